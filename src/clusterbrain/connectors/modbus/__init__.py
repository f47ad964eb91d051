"""Modbus TCP connector of the edge gateway: register maps (``registers``) and the source (``client``)."""
