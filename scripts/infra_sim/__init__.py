"""What a cluster would do with the rendered manifests, simulated offline (scripts/check_infra.py).

No API server, Argo CD or CNI runs here, so each rule a cluster applies is restated as a pure
function over rendered objects: Argo CD's AppProject admission (argocd), NetworkPolicy flows
(netpol, flows), Pod Security `restricted` (podsecurity) and cross-file consistency
(consistency). Every function returns problems as `Finding`s; none touches the filesystem except
the loaders named so.
"""
