"""The recorder agent behind ``flowpol record``: live sources, windows, durable output.

    capture.py          scapy/libpcap BPF on AF_PACKET sockets of the pod interfaces
    conntrack_events.py ``conntrack -E`` followed as a subprocess (ClusterIP and backend)
    podwatch.py         the pods of this node through the Kubernetes API -> IP timeline
    segments.py         closed windows -> rotating flow-log segments (+ stdout), their
                        catalog (size, sha256, times), held and retried on a full disk
    serve.py            HTTP: GET /segments, /segments/<name>, /metrics, /healthz
    readers.py          who may read segments: a reader's ServiceAccount token, checked
                        with a TokenReview (audience flowpol-recorder), fail closed
    metrics.py          the Prometheus metrics, read from the loop's counters
    run.py              the loop: sources -> Aggregator windows -> segments, SIGTERM
    pull.py             ``flowpol collect``: every recorder pod's segments, through the
                        API server's pod proxy or direct, resumable and checksummed
    collect_token.py    the reader token collect shows: TokenRequest or a token file
    collect.py          ``flowpol collect --logs``: every recorder pod's log, merged

Sources run in threads and hand batches of records to the loop through one queue; the
loop owns the Aggregator. Nothing here imports ``generator``.
"""
