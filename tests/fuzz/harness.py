"""The fuzz tier's engine: build run ``index`` of ``seed`` (a mutated input and the command
that reads it), run it through the real CLI, and judge the result.

Most runs call ``generator.cli.main.main()`` in this process (a fresh process costs
0.6 s of imports; a run in-process 20 ms), each in a directory of its own with relative
paths; every ``SUBPROCESS_EVERY``-th run is also run as ``python -m generator.cli.main``
and both must agree, which keeps the in-process harness honest.

Every run must end with exit 0, 1 or 2 and no traceback, write only inside its --out,
and write YAML that parses into the kinds flowpol writes. A run whose mutation only
added junk (mutate.Mutated.additive) must keep every record the clean input gave.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.fuzz import mutate
from tests.fuzz.seeds import (FLOWS, POLICIES, ROOT, SNAPSHOT, TIME, Seed, flow_seeds,
                              flowlog_seed, policy_seed, snapshot_seed)

DEFAULT_SEED = 20261207
DEFAULT_RUNS = 2500
TIMEOUT = float(os.environ.get("FLOWPOL_FUZZ_TIMEOUT", "15"))  # seconds per run
KNOWN_KINDS = {"NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy",
               "ClusterNetworkPolicy", "BaselineAdminNetworkPolicy", "AdminNetworkPolicy",
               "Kustomization"}
COMMANDS = {FLOWS: ("import", "generate", "verify", "diff"),
            SNAPSHOT: ("generate", "verify", "diff"),
            POLICIES: ("verify", "diff")}
SNAPSHOT_NAME, POLICY_NAME, CLEAN_FLOWS = "cluster.json", "policies.yaml", "hubble.jsonl"


def settings() -> dict:
    env = os.environ
    return {
        "seed": int(env.get("FLOWPOL_FUZZ_SEED", DEFAULT_SEED)),
        "runs": int(env.get("FLOWPOL_FUZZ_RUNS", DEFAULT_RUNS)),
        "jobs": int(env.get("FLOWPOL_FUZZ_JOBS", "2")),
        "subprocess_every": int(env.get("FLOWPOL_FUZZ_SUBPROCESS_EVERY", "100")),
        "cases": [int(c) for c in env.get("FLOWPOL_FUZZ_CASES", "").split(",") if c.strip()],
        "out": Path(env.get("FLOWPOL_FUZZ_OUT",
                            Path(tempfile.gettempdir()) / "flowpol-fuzz")),
    }


# ---------------------------------------------------------------------------- cases


@dataclass(frozen=True, slots=True)
class Seeds:
    flows: tuple[Seed, ...]
    snapshot: Seed
    policies: tuple[Seed, ...]


@dataclass(frozen=True, slots=True)
class Case:
    seed: int
    index: int
    target: str                 # the seed file mutated
    kind: str
    role: str
    command: str
    argv: tuple[str, ...]
    files: dict = field(hash=False)   # name -> bytes, the run directory's inputs
    mutation: str               # the mutation classes, "+"-joined
    detail: str
    additive: bool
    strict: bool
    gzip: str                   # "", "gzip", "gzip-bytes" or "gzip-members"
    baseline: tuple[str, str] | None   # (clean flow seed name, command) to compare counts with

    @property
    def out(self) -> str:
        return "out.jsonl" if self.command == "import" else "out"

    @property
    def label(self) -> str:
        gz = f"+{self.gzip}" if self.gzip else ""
        return f"{self.kind}{gz} {self.mutation} | {self.command}{' --strict' if self.strict else ''}"


def argv_for(command: str, flows: str, snapshot: str, policies: str, strict: bool,
             text: bool = False) -> tuple[str, ...]:
    if command == "import":
        argv = ["import", flows, "--out", "out.jsonl", "-j", "1"]
    elif command == "generate":
        argv = ["generate", flows, "-s", snapshot, "--out", "out", "-j", "1", "--time", TIME]
    elif command == "verify":
        argv = ["verify", flows, "-s", snapshot, "-p", policies, "-o",
                "text" if text else "json", "--time", TIME]
    else:
        argv = ["diff", flows, "-s", snapshot, "-p", policies, "--out", "out", "--time", TIME]
    return tuple(argv + (["--strict"] if strict else []))


def make_case(seeds: Seeds, seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}/{index}")
    role = rng.choices((FLOWS, SNAPSHOT, POLICIES), weights=(60, 20, 20))[0]
    target = {FLOWS: lambda: rng.choice(seeds.flows), SNAPSHOT: lambda: seeds.snapshot,
              POLICIES: lambda: rng.choice(seeds.policies)}[role]()
    command = rng.choice(COMMANDS[role])
    strict = rng.random() < 0.1
    m = mutate.mutate(rng, target.data, target.kind)
    data, name, gzip_mode = m.data, target.name, ""
    if role != POLICIES and rng.random() < 0.25:
        gzip_mode = rng.choice(("gzip", "gzip", "gzip-bytes", "gzip-members"))
        name += ".gz"
        if gzip_mode == "gzip":
            data = mutate.gz(data)
        elif gzip_mode == "gzip-members":
            data = mutate.gzip_two_members(data)
        else:
            # the compressed stream itself damaged; trailing garbage only is additive
            # (gzip(1) ignores it with a warning)
            data = mutate.gz(data)
            mb = mutate.mutate(rng, data, "gzip")
            data = mb.data
            m = mutate.Mutated(data, m.names + mb.names, f"{m.detail}; gzip bytes: {mb.detail}",
                               m.additive and mb.additive)
    files = {SNAPSHOT_NAME: seeds.snapshot.data, POLICY_NAME: seeds.policies[0].data,
             CLEAN_FLOWS: seeds.flows[0].data}
    flows, snapshot, policies = CLEAN_FLOWS, SNAPSHOT_NAME, POLICY_NAME
    if role == FLOWS:
        flows = name
    elif role == SNAPSHOT:
        snapshot = name
    else:
        policies = name
    files[name] = data
    text = command == "verify" and rng.random() < 0.2
    argv = argv_for(command, flows, snapshot, policies, strict, text)
    baseline = (target.name, command) if role == FLOWS and m.additive and not text else None
    return Case(seed, index, target.name, target.kind, role, command, argv, files,
                "+".join(m.names), m.detail, m.additive, strict, gzip_mode, baseline)


# ---------------------------------------------------------------------------- running


class RunTimeout(BaseException):
    """A run took longer than TIMEOUT (a BaseException: the product's handlers of
    Exception must not swallow it)."""


@dataclass(frozen=True, slots=True)
class Result:
    code: object
    stdout: str
    stderr: str
    crash: str | None       # an exception that escaped main(), with its traceback
    seconds: float


def _alarm(signum, frame):
    raise RunTimeout()


def run_in_process(argv: tuple[str, ...], cwd: Path) -> Result:
    from generator.cli.main import main
    from generator.output import files as written

    written._changed.clear()  # what an interrupted run reports; per process otherwise
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    old_argv, old_cwd = sys.argv, os.getcwd()
    code, crash = None, None
    start = time.perf_counter()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        os.chdir(cwd)
        sys.argv = ["flowpol", *argv]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = "returned without exiting"
            except SystemExit as e:
                code = e.code if e.code is not None else 0
    except RunTimeout:
        code = "timeout"
    except BaseException as e:  # noqa: BLE001 - what escaped main() is the finding
        crash = "".join(traceback.format_exception(e))
        code = "crash"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.argv = old_argv
        os.chdir(old_cwd)
    seconds = time.perf_counter() - start

    def text(buf: io.TextIOWrapper) -> str:
        buf.flush()
        return buf.buffer.getvalue().decode("utf-8", "backslashreplace")

    return Result(code, text(out), text(err), crash, seconds)


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COLUMNS", None)
    return env


def run_subprocess(argv: tuple[str, ...], cwd: Path) -> Result:
    start = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "generator.cli.main", *argv], cwd=cwd,
                           capture_output=True, env=subprocess_env(), timeout=TIMEOUT * 4)
    except subprocess.TimeoutExpired:
        return Result("timeout", "", "", None, time.perf_counter() - start)
    return Result(p.returncode, p.stdout.decode("utf-8", "backslashreplace"),
                  p.stderr.decode("utf-8", "backslashreplace"), None,
                  time.perf_counter() - start)


def prepare(case: Case, where: Path) -> None:
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    for name, data in case.files.items():
        (where / name).write_bytes(data)


# ---------------------------------------------------------------------------- judging


def kept_count(command: str, argv: tuple[str, ...], rundir: Path, stdout: str) -> int | None:
    """The flow records the run kept, as the CLI reports them (None: not reported)."""
    try:
        if command == "import":
            out = rundir / "out.jsonl"
            if not out.exists():
                return None
            return max(0, sum(1 for line in out.read_bytes().splitlines() if line.strip()) - 1)
        if command == "generate":
            return json.loads((rundir / "out" / "report.json").read_bytes())["inputs"]["kept"]
        if command == "diff":
            return json.loads((rundir / "out" / "diff.json").read_bytes())["inputs"]["kept"]
        if "json" in argv:
            return json.loads(stdout)["inputs"]["kept"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class Failure:
    symptom: str   # crash, traceback, exit code, timeout, records lost, escape, output YAML, disagree
    key: str       # what tells failures of one class apart (exception and place, ...)
    detail: str


def _crash_key(text: str) -> str:
    """The exception and the innermost frame of ours (generator/ or recorder/)."""
    lines = text.strip().splitlines()
    last = lines[-1] if lines else "?"
    place = ""
    for line in lines:
        s = line.strip()
        if s.startswith("File ") and ("/generator/" in s or "/recorder/" in s):
            parts = s.split('"')
            where = parts[1].split("/fuzz/")[-1] if len(parts) > 1 else s
            where = where[where.find("generator/"):] if "generator/" in where else \
                where[where.find("recorder/"):]
            place = f"{where}:{s.rsplit('line ', 1)[-1]}"
    exc = last.split(":", 1)[0]
    return f"{exc} at {place}" if place else exc


_FILE = re.compile(r"[\w./-]+\.(?:jsonl|txt|pcapng|pcap|json|yaml)(?:\.gz)?(?::\d+)?")


def _reason(stderr: str) -> str:
    """The first error a run gave, without file names and numbers (what tells one cause
    of lost records from another); "no error" when it lost them silently."""
    for line in stderr.splitlines():
        if "error:" in line:
            text = _FILE.sub("<file>", line.split("error:", 1)[1])
            return re.sub(r"\d+", "N", text).strip()[:110]
    return "no error reported"


def _yaml_problems(out: Path, kinds: bool) -> list[str]:
    """What is wrong with the YAML a run wrote: it must parse; generate's must hold only
    the kinds flowpol writes (diff's proposed set is the user's own files, kinds and all,
    with edits)."""
    problems = []
    for f in sorted(out.rglob("*.yaml")):
        try:
            docs = list(yaml.load_all(f.read_bytes(), Loader=getattr(yaml, "CSafeLoader",
                                                                       yaml.SafeLoader)))
        except (yaml.YAMLError, RecursionError) as e:
            problems.append(f"{f.name}: does not parse: {str(e).splitlines()[0]}")
            continue
        for d in docs:
            if d is None or not kinds:
                continue
            if not isinstance(d, dict) or not isinstance(d.get("kind"), str) \
                    or d["kind"] not in KNOWN_KINDS:
                kind = d.get("kind") if isinstance(d, dict) else type(d).__name__
                problems.append(f"{f.name}: a document of kind {kind!r}")
    return problems


def _escapes(case: Case, rundir: Path) -> list[str]:
    allowed = set(case.files) | {case.out}
    stray = sorted(p.name for p in rundir.iterdir() if p.name not in allowed)
    stray += sorted(f"../{p.name}" for p in rundir.parent.iterdir() if p != rundir
                    and not p.name.startswith("run"))
    return stray


def judge(case: Case, res: Result, rundir: Path, clean: int | None) -> list[Failure]:
    failures = []
    if res.crash:
        failures.append(Failure("crash", _crash_key(res.crash), res.crash[-3000:]))
    for stream in (res.stderr, res.stdout):
        if "Traceback (most recent call last)" in stream:
            tb = stream[stream.index("Traceback (most recent call last)"):]
            failures.append(Failure("traceback", _crash_key(tb), tb[-3000:]))
            break
    if res.code == "timeout":
        failures.append(Failure("timeout", f"over {TIMEOUT:g}s", ""))
    elif res.code not in (0, 1, 2) and not res.crash:
        failures.append(Failure("exit code", str(res.code), res.stderr[-2000:]))
    stray = _escapes(case, rundir)
    for p in sorted(Path(mutate.ESCAPE).parent.glob(Path(mutate.ESCAPE).name + "*")):
        stray.append(str(p))  # with two workers, possibly the other's run: the saved input shows
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if stray:
        failures.append(Failure("escape", "wrote outside --out", ", ".join(stray)[:500]))
    out = rundir / "out"
    if out.is_dir():
        problems = _yaml_problems(out, kinds=case.command == "generate")
        if problems:
            failures.append(Failure("output YAML", problems[0].split(": ", 1)[-1][:60],
                                    "; ".join(problems)[:2000]))
    if case.baseline and clean is not None and not case.strict and res.code in (0, 1, 2):
        got = kept_count(case.command, case.argv, rundir, res.stdout)
        if got != clean:
            failures.append(Failure("records lost" if got is None or got < clean else
                                    "records gained", _reason(res.stderr),
                                    f"{got} record(s) kept, the clean input gave {clean}; "
                                    f"stderr: {res.stderr[-1500:]}"))
    if res.code == 2 and not any(line.startswith(("flowpol: error", "Error", "Usage"))
                                 or ": error:" in line for line in res.stderr.splitlines()):
        failures.append(Failure("exit 2 without an error line", case.command,
                                res.stderr[-1500:]))
    return failures


def agree(a: Result, b: Result, case: Case, dir_a: Path, dir_b: Path) -> list[Failure]:
    """In-process and subprocess runs of one case must end alike."""
    diffs = []
    if a.code != b.code:
        diffs.append(f"exit {a.code} in-process, {b.code} as a process")
    ka = kept_count(case.command, case.argv, dir_a, a.stdout)
    kb = kept_count(case.command, case.argv, dir_b, b.stdout)
    if ka != kb:
        diffs.append(f"{ka} record(s) kept in-process, {kb} as a process")

    def errors(r: Result) -> list[str]:
        return [line for line in r.stderr.splitlines() if line.startswith("flowpol: error")]
    if errors(a) != errors(b):
        diffs.append(f"error lines differ: {errors(a)[:3]} vs {errors(b)[:3]}")
    return [Failure("disagree", diffs[0].split(" ")[0], "; ".join(diffs))] if diffs else []


# ---------------------------------------------------------------------------- reporting


def save(case: Case, failures: list[Failure], res: Result, clean: int | None,
         root: Path) -> Path:
    where = root / f"seed{case.seed}" / f"case{case.index:05d}"
    prepare(case, where)
    (where / "case.json").write_text(json.dumps({
        "seed": case.seed, "index": case.index, "target": case.target, "kind": case.kind,
        "role": case.role, "command": case.command, "argv": list(case.argv),
        "inputs": sorted(case.files), "mutation": case.mutation, "detail": case.detail,
        "additive": case.additive, "strict": case.strict, "gzip": case.gzip,
        "clean_count": clean, "exit": str(res.code),
        "failures": [{"symptom": f.symptom, "key": f.key, "detail": f.detail} for f in failures],
        "stderr_tail": res.stderr[-3000:],
    }, indent=2) + "\n")
    return where


def repro(where: Path) -> str:
    return f"cd {ROOT} && {Path(sys.executable).name} -m tests.fuzz.replay {where}"


# ---------------------------------------------------------------------------- workers

_SEEDS: Seeds | None = None
_CLEAN: dict[tuple[str, str], int | None] = {}


def build_seeds(work: Path) -> Seeds:
    """The clean inputs, the flow log and the policies made by the CLI from the clean
    Hubble seed (so they are what flowpol writes today)."""
    flows = flow_seeds()
    snap = snapshot_seed()
    work.mkdir(parents=True, exist_ok=True)
    (work / CLEAN_FLOWS).write_bytes(flows[0].data)
    (work / SNAPSHOT_NAME).write_bytes(snap.data)
    made = {}
    for argv in (("import", CLEAN_FLOWS, "--out", "flowlog.jsonl", "-j", "1"),
                 ("generate", CLEAN_FLOWS, "-s", SNAPSHOT_NAME, "--out", "k8s", "-j", "1"),
                 ("generate", CLEAN_FLOWS, "-s", SNAPSHOT_NAME, "--out", "cilium", "-j", "1",
                  "--dialect", "cilium")):
        res = run_in_process(argv, work)
        if res.code != 0:
            raise RuntimeError(f"the clean run {argv} ended {res.code}: {res.stderr[-2000:]}")
    made["flowlog"] = (work / "flowlog.jsonl").read_bytes()

    def policies(d: str) -> bytes:
        return b"".join(p.read_bytes() for p in sorted((work / d).glob("*.yaml"))
                        if p.name != "kustomization.yaml")
    return Seeds(tuple(flows) + (flowlog_seed(made["flowlog"]),), snap,
                 (policy_seed(POLICY_NAME, policies("k8s")),
                  policy_seed("cilium.yaml", policies("cilium"))))


def clean_count(seeds: Seeds, baseline: tuple[str, str], work: Path) -> int | None:
    if baseline not in _CLEAN:
        name, command = baseline
        seed = next(s for s in seeds.flows if s.name == name)
        where = work / f"clean-{name}-{command}"
        case = Case(0, -1, name, seed.kind, FLOWS, command,
                    argv_for(command, name, SNAPSHOT_NAME, POLICY_NAME, False),
                    {SNAPSHOT_NAME: seeds.snapshot.data, POLICY_NAME: seeds.policies[0].data,
                     name: seed.data}, "", "", False, False, "", None)
        prepare(case, where)
        res = run_in_process(case.argv, where)
        _CLEAN[baseline] = kept_count(command, case.argv, where, res.stdout) \
            if res.code in (0, 1) else None
    return _CLEAN[baseline]


@dataclass(frozen=True, slots=True)
class Outcome:
    index: int
    label: str
    command: str
    seconds: float
    failures: tuple[Failure, ...]
    saved: str | None
    subprocess: bool


def run_case(seeds: Seeds, seed: int, index: int, work: Path, fail_root: Path,
             with_subprocess: bool) -> Outcome:
    case = make_case(seeds, seed, index)
    clean = clean_count(seeds, case.baseline, work) if case.baseline else None
    rundir = work / "box" / "run"
    prepare(case, rundir)
    res = run_in_process(case.argv, rundir)
    failures = judge(case, res, rundir, clean)
    if with_subprocess:
        other = work / "box" / "run-sub"
        prepare(case, other)
        sub = run_subprocess(case.argv, other)
        failures += [f for f in judge(case, sub, other, clean)
                     if f.symptom not in {x.symptom for x in failures}]
        if not res.crash:  # a crash in-process ends as exit 1 in a process: found already
            failures += agree(res, sub, case, rundir, other)
        shutil.rmtree(other, ignore_errors=True)
    saved = str(save(case, failures, res, clean, fail_root)) if failures else None
    if not failures:  # an earlier run's saved failure of this case is fixed
        shutil.rmtree(fail_root / f"seed{case.seed}" / f"case{case.index:05d}", ignore_errors=True)
    return Outcome(index, case.label, case.command, res.seconds, tuple(failures), saved,
                   with_subprocess)


def _worker_chunk(args: tuple) -> list[Outcome]:
    seed, indices, work_root, fail_root, every = args
    work = Path(work_root) / f"w{os.getpid()}"
    outcomes = []
    for i in indices:
        try:
            outcomes.append(run_case(_SEEDS, seed, i, work, Path(fail_root),
                                     every > 0 and i % every == 0))
        except Exception as e:  # noqa: BLE001 - a bug of the tier's own, reported as one
            text = traceback.format_exc()
            outcomes.append(Outcome(i, "harness ? | ?", "?", 0.0, (Failure(
                "harness error", f"{type(e).__name__}", text[-3000:]),), None, False))
    return outcomes


def run_all(seed: int, indices: list[int], jobs: int, every: int, fail_root: Path,
            work_root: Path) -> list[Outcome]:
    """Every run, spread over ``jobs`` forked workers (they inherit the imported CLI and
    the seeds)."""
    global _SEEDS
    _SEEDS = build_seeds(work_root / "seeds")
    chunks = [indices[i:i + 20] for i in range(0, len(indices), 20)]
    args = [(seed, c, str(work_root), str(fail_root), every) for c in chunks]
    if jobs <= 1:
        return [o for a in args for o in _worker_chunk(a)]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return [o for part in pool.imap_unordered(_worker_chunk, args) for o in part]


def summary(outcomes: list[Outcome], seed: int, wall: float) -> tuple[str, int]:
    """The distinct failure classes, one example each (the smallest case index), and
    the figures; with the number of failing runs."""
    classes: dict[tuple, list[Outcome]] = {}
    for o in outcomes:
        for f in o.failures:
            source, command = o.label.split(" | ")
            kind, mutations = source.split(" ", 1)
            # a crash is one class wherever it showed; the rest by input, mutation, command
            cls = (f.symptom, f.key) if f.symptom in ("crash", "traceback", "records lost",
                                                      "records gained") else \
                (f.symptom, f.key, kind, mutations.split("+")[0], command)
            classes.setdefault(cls, []).append(o)
    failing = sum(1 for o in outcomes if o.failures)
    by_command: dict[str, list[float]] = {}
    for o in outcomes:
        by_command.setdefault(o.command, []).append(o.seconds)
    lines = [f"flowpol fuzz: seed {seed}, {len(outcomes)} runs "
             f"({sum(o.subprocess for o in outcomes)} also as a subprocess) in {wall:.1f}s; "
             f"{failing} failing run(s) in {len(classes)} class(es)",
             "  in-process seconds per run: " + ", ".join(
                 f"{c} {sum(t) / len(t):.3f} (n={len(t)})" for c, t in sorted(by_command.items()))]
    for cls, runs in sorted(classes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        first = min(runs, key=lambda o: o.index)
        f = next(f for f in first.failures if (f.symptom, f.key) == cls[:2])
        seen = sorted({o.label.split(" ")[0] + " | " + o.command for o in runs})
        lines.append(f"- [{len(runs)}x] {' | '.join(cls)}" +
                     (f" (in: {', '.join(seen[:6])})" if len(cls) == 2 else ""))
        lines.append(f"    e.g. case {first.index}: {first.label}")
        lines.append(f"    {f.detail.strip().splitlines()[-1][:300] if f.detail.strip() else ''}")
        if first.saved:
            lines.append(f"    input: {first.saved}")
            lines.append(f"    replay: {repro(Path(first.saved))}")
    return "\n".join(lines), failing
