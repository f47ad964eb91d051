"""Sparkplug B (Eclipse Sparkplug 3.0) over MQTT: the payload codec and the edge-node sessions.

``codec`` turns topics and protobuf payloads into plain values and back; ``session`` keeps, per
edge node, what its births declared (aliases, datatypes, bdSeq, seq) and turns each message into
readings, births, deaths, rebirth requests and problems. Both are pure: the MQTT ingest feeds them.
"""
