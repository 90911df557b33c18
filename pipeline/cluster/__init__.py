"""Conversations past one machine: `python -m pipeline --pairs N --ray ADDRESS` runs each
conversation as a Ray task on a node of a Ray cluster, and gathers every run folder back.

Following a run top-down: `driver` (`capture`: the cluster, a server every node reaches, the
placement, the rooms, one task per conversation, what each sends back, lost nodes) ->
`connection` (joining the cluster: `auto`, `ray://host:10001`, or `local`) -> `placement` (the
CPU each conversation reserves, spread over the nodes; a server check from each node) -> `task`
(one conversation on its node: today's worker process, `pipeline.worker`) -> `gate` (one start
instant and one stop switch for the whole cluster) and `transfer` (a finished run folder in
chunks, checked against the SHA-256 its node computed); beside them `nodes` (which node, alive or
not), `lost` (the failed run folder the driver writes for a conversation whose node was lost)
and `progress` (the driver's view). This package is the only one that imports ray, and only
once `--ray` is given; without the `echoproof[ray]` extra, `connection.require_ray` says so.
"""

RAY_EXTRA = "echoproof[ray]"
