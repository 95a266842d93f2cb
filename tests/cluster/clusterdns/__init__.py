"""A small cluster DNS server for the project's test cluster, after CoreDNS's kubernetes plugin.

Run: python -m clusterdns --kubeconfig FILE --listen ADDRESS [--port 53] [--zone cluster.local]
(with tests/cluster on PYTHONPATH). See records.py for the names it answers.
"""
