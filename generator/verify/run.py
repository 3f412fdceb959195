"""`flowpol verify` as functions: load policies, replay the observed traffic, count usage.

The CLI (generator/cli/verify.py) only parses options and prints what
``generator.verify.render`` makes of a ``VerifyResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from generator.verify.check import CheckResult, check_policies
from generator.pipeline import ObservedTraffic, observe_request
from generator.verify.combined import make_evaluator
from generator.verify.declared import DeclaredCheck, check_declared
from generator.verify.policy import NetworkPolicy, parse_policies
from generator.verify.policyset import PolicyKinds, load_policy_kinds
from generator.verify.usage import UsageResult, broader_than_use, rule_usage
from recorder.errors import InputError
from recorder.report import Skipped
from recorder.sources import ReadOptions

# Skipped documents that are policies of another API: verifying without them would
# claim more than we know, so --strict refuses them.
OTHER_POLICY_API = "other-networkpolicy-api"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies to verify and where they came from."""

    policies: tuple[NetworkPolicy, ...]
    origin: str  # "files" or "cluster"
    files: tuple[str, ...] = ()
    context: str | None = None  # origin "cluster": the kubeconfig context
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()
    kinds: PolicyKinds = PolicyKinds()  # every kind read, NetworkPolicies included
    ignored: tuple[str, ...] = ()  # files of a directory that hold no policy (reports, ...)

    @property
    def count(self) -> int:
        return max(self.kinds.count, len(self.policies))


def policies_from_files(paths: list[str], strict: bool = False) -> PolicySet:
    loaded, kinds = load_policy_kinds(paths)
    foreign = [s for s in loaded.skipped if s.reason.startswith(OTHER_POLICY_API)]
    if strict and foreign:
        s = foreign[0]
        raise InputError(
            f"{s.reason.split(':', 1)[1]} NetworkPolicy ({s.detail}) cannot be verified: flowpol "
            "evaluates networking.k8s.io/v1 NetworkPolicies only; remove it from the inputs or "
            "drop --strict to skip it (and count it)", s.path, s.line)
    if not kinds.count:
        skipped = f" ({len(loaded.skipped)} document(s) skipped: " + "; ".join(
            str(s) for s in loaded.skipped[:5]) + ")" if loaded.skipped else ""
        if loaded.ignored:
            skipped += f" ({len(loaded.ignored)} file(s) without any Kubernetes object ignored)"
        raise InputError(f"no NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy "
                         f"or ClusterNetworkPolicy found in {', '.join(paths)}{skipped}; give the "
                         "files or directory holding the policies to verify")
    warnings = list(loaded.warnings)
    for s in foreign:
        warnings.append(f"{s}: skipped; its rules are not part of this verification")
    if kinds.not_judged:
        warnings.append(f"{len(kinds.not_judged)} part(s) of Cilium or ClusterNetworkPolicy rules "
                        "not judged (L7 rules are judged at L3/L4 only): "
                        + "; ".join(kinds.not_judged[:10])
                        + (" ..." if len(kinds.not_judged) > 10 else ""))
    return PolicySet(loaded.policies, "files", loaded.files, None, loaded.skipped,
                     tuple(warnings), kinds, loaded.ignored)


def policies_from_cluster(kubeconfig: str | None, context: str | None) -> PolicySet:
    from generator.inventory.live import read_network_policies

    live = read_network_policies(kubeconfig=kubeconfig, context=context)
    policies = parse_policies(live.items, f"cluster context {live.context}")
    warnings = list(live.warnings)
    if not policies:
        warnings.append(f"the cluster of context {live.context} has no NetworkPolicy: every "
                        "observed connection is allowed")
    return PolicySet(policies, "cluster", (), live.context, (), tuple(warnings))


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    inputs: list[str]
    snapshot: list[str]
    fmt: str | None = None
    strict: bool = False
    read_options: ReadOptions = ReadOptions()
    unused: bool = False
    apiserver_cidrs: tuple[str, ...] = ()  # --apiserver-cidr: where the API server calls from
    declared: bool = True  # also judge the calls the cluster declares the API server makes


@dataclass(frozen=True, slots=True)
class VerifyResult:
    policies: PolicySet
    observed: ObservedTraffic
    check: CheckResult
    usage: UsageResult | None  # with --unused
    declared: DeclaredCheck | None = None  # None with --no-declared

    @property
    def denied(self) -> bool:
        """An observed connection, or a call the cluster declares, would be denied."""
        return bool(self.check.denied or (self.declared is not None and self.declared.denied))

    @property
    def exit_code(self) -> int:
        """2 after bad input (``raise_for_bad_input``), else 1 when an observed
        connection or a declared call would be denied, else 0."""
        if self.observed.bad_input:
            return 2
        return 1 if self.denied else 0


def run_verify(req: VerifyRequest, policies: PolicySet) -> VerifyResult:
    observed = observe_request(req)
    # One evaluator for the check and the usage count: the second pass hits its caches.
    evaluator = make_evaluator(policies.policies, observed.index.inventory,
                               policies.kinds.cilium, policies.kinds.cluster)
    connections = observed.resolved.connections
    every = policies.policies + policies.kinds.cilium + policies.kinds.cluster
    check = check_policies(connections, every, observed.index, evaluator)  # type: ignore[arg-type]
    # rule usage: NetworkPolicy and Cilium allow rules (their entries are what --unused lists)
    usage = (rule_usage(connections, policies.policies, evaluator, observed.index.inventory,  # type: ignore[arg-type]
                        policies.kinds.cilium)
             if req.unused else None)
    if usage is not None:
        usage = replace(usage, broader=broader_than_use(usage, policies.policies, connections,
                                                        observed.index))
    declared = check_declared(observed.index, evaluator) if req.declared else None
    return VerifyResult(policies, observed, check, usage, declared)
