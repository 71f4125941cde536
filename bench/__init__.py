"""`make bench`: Atelier's throughput and latency as ratios to a bare grpc.aio echo server.

Absolute rates depend on the machine; the ratio to an echo server measured by the same
client, on the same cores, in the same run, says how much Atelier itself costs.
"""
