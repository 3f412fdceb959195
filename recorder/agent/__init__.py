"""The recorder agent behind ``flowpol record``: live sources, windows, durable output.

    capture.py          scapy/libpcap BPF on AF_PACKET sockets of the pod interfaces
    conntrack_events.py ``conntrack -E`` followed as a subprocess (ClusterIP and backend)
    podwatch.py         the pods of this node through the Kubernetes API -> IP timeline
    segments.py         closed windows -> rotating flow-log segments (+ stdout)
    run.py              the loop: sources -> Aggregator windows -> segments, SIGTERM
    collect.py          ``flowpol collect``: every recorder pod's log, merged

Sources run in threads and hand batches of records to the loop through one queue; the
loop owns the Aggregator. Nothing here imports ``generator``.
"""
