"""The host's hardware seam: serial links by URL, simulated devices, GPIO through gpiozero.

No queue logic here: hal/ knows frames and pins, never tickets or counters. It imports the frame
codec from firmware/ (through hal.codec) and nothing from gateway/ or office/.
"""
