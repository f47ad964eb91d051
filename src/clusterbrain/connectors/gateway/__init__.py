"""The edge gateway: reads field devices, spools, and publishes to the platform over MQTT."""
