"""The gateway: the Raspberry Pi service of one office floor (journal, device links, MQTT)."""
