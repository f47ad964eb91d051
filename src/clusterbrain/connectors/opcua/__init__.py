"""OPC UA connector of the edge gateway: subscriptions or polling, commands, discovery.

``client.OpcUaSource`` is the gateway's ``FieldSource`` for one OPC UA server, configured by
``config.OpcUaConfig``; ``browse.discover`` walks a server's address space and ``draft`` turns what
it finds into a draft device profile and node list. The pure mappings (status codes to quality,
timestamps, values, command checks) live in ``quality`` and ``commands``. asyncua stays inside
this package: nothing it exports takes or returns an asyncua type.
"""
