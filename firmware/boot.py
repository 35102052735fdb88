# Runs first on the board: reset cause and watchdog (slots.boot); main.py then loads the application.
import slots

slots.boot()
