"""Pure builders of a PrivateModel's children: plain dicts, no API calls, no owner references.

Handlers build, `kopf.adopt`, then create or patch. Each builder takes
(spec, model_name, namespace, defaults) and, where a child depends on the cluster's state,
that state as an explicit argument (the player pod UIDs, the digest of the shares in place, the
issued certificates). A child of one player triple also takes `triple` (its number; 0, the
default, is the triple a model had before scale-out, with the same names).
"""
