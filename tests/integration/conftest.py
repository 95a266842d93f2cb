from integration.fixtures import client, cluster, reference_model, scratch_cluster, serving, shared  # noqa: F401
