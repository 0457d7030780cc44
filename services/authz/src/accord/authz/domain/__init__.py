"""The pure policy-decision domain of the authz service.

Access queries are decided by Cedar policies: deny unless a ``permit`` policy
applies and no ``forbid`` policy does. Nothing here talks to Kafka, a database or
the network; :mod:`accord.authz.domain.policy_files` is the one module that reads
files (a policy folder).
"""

from accord.authz.domain.model import (
    NO_POLICY_PERMITS,
    AccessQuery,
    Decision,
    Entity,
    EntityRef,
)
from accord.authz.domain.policy_set import (
    EntityError,
    EntityGraph,
    LoadedPolicies,
    PolicyError,
    PolicySource,
    compile_policies,
    decide,
    decide_batch,
    load_entities,
)

__all__ = [
    "NO_POLICY_PERMITS",
    "AccessQuery",
    "Decision",
    "Entity",
    "EntityError",
    "EntityGraph",
    "EntityRef",
    "LoadedPolicies",
    "PolicyError",
    "PolicySource",
    "compile_policies",
    "decide",
    "decide_batch",
    "load_entities",
]
