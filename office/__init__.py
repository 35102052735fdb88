"""The pure model of one office's counter floor: config, calendar, events, state, estimates.

Imports nothing from gateway, hal, MQTT or any I/O: events in, effects out, an injected clock.
"""
