"""D-Wave QPU sampling of the RBM's Ising form at the calibrated temperature (DESIGN §6).

A quantum annealer returns reads approximately ∝ exp(−β_eff · E_programmed) (a late-anneal
freeze-out; Amin 2015, Benedetti et al. 2016), with β_eff an unknown property of the device.
To sample the RBM, p(v, h) ∝ exp(−E(v, h)), program E / β_eff:

    E_programmed = prefactor · E_Ising,   prefactor = 1 / β_eff,   clipped to h_range, j_range

with ``auto_scale=False`` so that the device does not rescale it back. β_eff is estimated from
the logical reads by maximum pseudo-likelihood (``dwave.system.temperatures``; Besag 1975):
the β that solves Σ_reads Σ_i f_i σ(β f_i) = 0, f_i the energy lost by flipping unit i. Each
of ``calibration_rounds`` rounds samples, estimates β_eff and sets prefactor ← 1/β_eff.

K_{n,m} (visible × hidden) is minor-embedded once, by busclique's native biclique embeddings
(minorminer.find_embedding as a fallback on defective graphs), cached as JSON keyed by the
solver graph and (n, m), and reused through ``FixedEmbeddingComposite``; logical values are
read from chains by majority vote. Without a D-Wave token the solver is
``MockDWaveSampler``, whose substitute sampler is simulated annealing ending at ``mock_beta``
on the programmed (embedded) problem, so offline reads are thermal at β_eff = mock_beta.
``dwave.system`` is imported here only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dimod
import numpy as np
import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.ising import hidden_labels, split_samples, to_ising, visible_labels
from rbmdiff.rbm import RBM
from rbmdiff.samplers.anneal import sampler_seed
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info

if TYPE_CHECKING:
    import networkx as nx

TOPOLOGIES = ("pegasus", "zephyr")
MOCK_SHAPES = {"pegasus": [8], "zephyr": [5, 4]}  # K_{76,76} and K_{72,72}: digits (64) fit


# -- solver ------------------------------------------------------------------------------
def has_token() -> bool:
    """True when a D-Wave API token is configured (DWAVE_API_TOKEN or a dwave config file)."""
    if os.environ.get("DWAVE_API_TOKEN"):
        return True
    try:
        from dwave.cloud.config import load_config

        return bool(load_config().get("token"))
    except Exception:  # a broken config file means no usable token
        return False


def mock_solver(topology: str, shape: list[int], *, beta: float, sweeps: int) -> Any:
    """MockDWaveSampler whose reads are simulated annealing from β = min(0.1, β) to ``beta``
    on the programmed problem: thermal at β_eff = ``beta`` once the anneal has mixed."""
    from dwave.samplers import SimulatedAnnealingSampler
    from dwave.system.testing import MockDWaveSampler

    schedule = {"beta_range": (min(0.1, beta), beta), "num_sweeps": sweeps,
                "beta_schedule_type": "geometric"}
    return MockDWaveSampler(
        topology_type=topology, topology_shape=list(shape), parameter_warnings=False,
        substitute_sampler=SimulatedAnnealingSampler(), substitute_kwargs=schedule,
    )


def shape_name(topology: str, shape: list[int]) -> str:
    """'P16' for pegasus [16], 'Z12 (t=4)' for zephyr [12, 4]."""
    if topology == "pegasus":
        return f"P{shape[0]}"
    return f"Z{shape[0]} (t={shape[1] if len(shape) > 1 else 4})"


# -- biclique limit ------------------------------------------------------------------------
def biclique_limit(topology: str, shape: list[int]) -> int | None:
    """k such that busclique embeds K_{n,m} on the perfect-yield graph iff max(n, m) ≤ k
    (its ``find_biclique_embedding`` serves K_{n,m} from a K_{k',k'} with k' ≥ max(n, m)).
    Closed forms, checked against busclique's tables in the tests:

        pegasus P_M (M ≥ 3):   k = 12(M − 1) − 8     (P8: 76, P16: 172)
        zephyr Z_{m,t}:        k = 2t(2m − 1)        (Z5: 72, Z12: 184 for t = 4)

    None when no closed form applies (small or unknown shapes).
    """
    if topology == "pegasus" and shape and shape[0] >= 3:
        return 12 * (shape[0] - 1) - 8
    if topology == "zephyr" and shape:
        m, t = shape[0], (shape[1] if len(shape) > 1 else 4)
        return 2 * t * (2 * m - 1)
    return None


def check_embeddable(n: int, m: int, topology: str, shape: list[int]) -> None:
    """Refuse K_{n,m} beyond the topology's biclique limit K_{k,k}, instantly (closed form)."""
    k = biclique_limit(topology, shape)
    if k is not None and max(n, m) > k:
        raise RbmdiffError(
            f"an RBM with {n} visible × {m} hidden units needs a K_{{{n},{m}}} minor, beyond the "
            f"biclique limit K_{{{k},{k}}} of {topology} {shape_name(topology, shape)}: use at "
            f"most {k} units on each layer, or a larger topology (pegasus P16 holds "
            "K_{172,172}, zephyr Z12 K_{184,184})"
        )


# -- embedding -----------------------------------------------------------------------------
def default_embedding_dir() -> Path:
    """$XDG_CACHE_HOME/rbmdiff/embeddings (default ~/.cache/rbmdiff/embeddings)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rbmdiff" / "embeddings"


def graph_id(graph: nx.Graph) -> str:
    """sha256 of the sorted qubit and coupler lists: the identity of a solver's working graph."""
    nodes = sorted(graph.nodes)
    edges = sorted(tuple(sorted(e)) for e in graph.edges)
    return hashlib.sha256(json.dumps([nodes, edges]).encode()).hexdigest()


def biclique_edges(n: int, m: int) -> list[tuple[str, str]]:
    """The n·m edges (v_i, h_j) of K_{n,m}."""
    return [(v, h) for v in visible_labels(n) for h in hidden_labels(m)]


def is_perfect_yield(graph: nx.Graph, topology: str, shape: list[int]) -> bool:
    """Whether ``graph`` is the whole (fabric-only) pegasus/zephyr graph of its shape."""
    try:
        import dwave.graphs as dg
    except ImportError:  # dwave-system before dwave-graphs
        import dwave_networkx as dg

    full = (dg.pegasus_graph(shape[0]) if topology == "pegasus"
            else dg.zephyr_graph(shape[0], shape[1] if len(shape) > 1 else 4))
    return (len(graph), graph.number_of_edges()) == (len(full), full.number_of_edges())


def search_embedding(
    graph: nx.Graph, n: int, m: int, *, topology: str, shape: list[int], timeout: float,
    seed: int,
) -> tuple[dict[str, list[int]], str]:
    """Embed K_{n,m}: busclique's biclique embedding (shortest longest chain), then
    minorminer.find_embedding on a defective graph.  -> (embedding, method)."""
    from minorminer import find_embedding
    from minorminer.busclique import busgraph_cache

    emb = busgraph_cache(graph).find_biclique_embedding(visible_labels(n), hidden_labels(m))
    if emb:
        return {k: list(c) for k, c in emb.items()}, "busclique"
    if is_perfect_yield(graph, topology, shape):  # busclique's tables are exact here
        raise RbmdiffError(
            f"K_{{{n},{m}}} has no busclique biclique embedding on {topology} "
            f"{shape_name(topology, shape)}; use fewer units on the larger layer"
        )
    emb = find_embedding(biclique_edges(n, m), graph, timeout=timeout, random_seed=seed)
    if not emb:
        raise RbmdiffError(
            f"no embedding of K_{{{n},{m}}} found on {topology} {shape_name(topology, shape)} "
            f"(busclique, then minorminer within {timeout:g} s); use fewer units on either layer"
        )
    return {k: list(c) for k, c in emb.items()}, "minorminer"


def load_or_find_embedding(
    graph: nx.Graph, n: int, m: int, *, topology: str, shape: list[int], folder: Path,
    timeout: float, seed: int,
) -> tuple[dict[str, list[int]], str, Path]:
    """The cached K_{n,m} embedding for this graph, or a new one (searched, then saved as JSON).
    -> (embedding, method, path); method is "cache" when the file was reused."""
    from dwave.embedding import is_valid_embedding

    gid = graph_id(graph)
    path = Path(folder) / f"{topology}-{'x'.join(map(str, shape))}-{gid[:16]}-K{n}x{m}.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            emb = {k: list(c) for k, c in record["embedding"].items()}
            if record.get("graph_id") == gid and is_valid_embedding(
                emb, biclique_edges(n, m), graph
            ):
                return emb, "cache", path
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # unreadable or stale: search again and overwrite
    emb, method = search_embedding(
        graph, n, m, topology=topology, shape=shape, timeout=timeout, seed=seed
    )
    record = {"topology": topology, "shape": list(shape), "graph_id": gid, "n_visible": n,
              "n_hidden": m, "method": method, "embedding": emb}
    atomic_write_bytes(path, json.dumps(record).encode())
    return emb, method, path


# -- temperature ---------------------------------------------------------------------------
def estimate_beta(
    h: dict, J: dict, samples: dimod.SampleSet, *, num_bootstrap: int, seed: int
) -> tuple[float, float, float]:
    """β_eff of reads assumed ∝ exp(−β E_s), E_s = Σ h s + Σ J s s, with a 95% bootstrap
    interval.  -> (β̂, β_low, β_high); inf when no read shows an excitation.

    β̂ maximises the pseudo-likelihood Π_reads Π_i σ(−β f_i), f_i the energy lost by flipping
    unit i (``dwave.system.temperatures``): it solves Σ_s ψ_s(β) = 0, ψ_s = Σ_i f_i σ(β f_i).
    The interval is the estimating-function bootstrap (Hu & Kalbfleisch 2000): for reads S*
    resampled with replacement, β* = β̂ − Σ_{S*} ψ_s(β̂) / Σ_{S*} ψ'_s(β̂). (dwave-system's own
    ``num_bootstrap_samples`` resamples only that many reads, so its interval does not
    shrink with the number of reads.)
    """
    from dwave.system.temperatures import effective_field, maximum_pseudolikelihood_temperature
    from scipy.special import expit

    bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
    f, _ = effective_field(bqm, samples, current_state_energy=True)  # (B, N)
    f = np.repeat(f, samples.record.num_occurrences, axis=0)
    T, _ = maximum_pseudolikelihood_temperature(en1=f)
    if not T > 0:
        return math.inf, math.inf, math.inf
    beta = 1 / float(T)
    if num_bootstrap == 0:
        return beta, beta, beta
    s = expit(beta * f)  # σ(β f), (B, N)
    psi, dpsi = (f * s).sum(1), (f * f * s * (1 - s)).sum(1)  # ψ_s, ψ'_s: (B,)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, len(f), size=len(f))
        boot.append(beta - psi[idx].sum() / dpsi[idx].sum())
    low, high = np.percentile(boot, [2.5, 97.5]).tolist()
    return beta, float(low), float(high)


# -- sampler -------------------------------------------------------------------------------
class QPUSampler:
    """RBM reads from a D-Wave QPU (or, offline, its mock), calibrated to β = 1.

    mock: None = the QPU when a token is configured, else the mock; True / False force it.
    topology: 'pegasus' or 'zephyr'. mock_shape: the mock's graph, default pegasus P8 or
    zephyr Z5 (t = 4), the smallest holding K_{64,64} (digits). mock_beta: the mock's β_eff;
    mock_sweeps: its annealing sweeps per read. solver: a QPU solver name (default: any of the
    topology). beta_eff: first guess of β_eff in programmed units; ``calibration_rounds``
    rounds of ``calibration_reads`` reads re-estimate it (0 rounds: trust the guess).
    num_bootstrap: bootstrap replicates for β_eff's interval. chain_strength: in programmed
    units, default the strongest ferromagnetic coupling allowed, −j_range[0]. num_reads: reads
    per solver call (default all, up to the solver's limit). annealing_time: µs, solver default
    if None. embedding_dir: the JSON embedding cache (default :func:`default_embedding_dir`);
    embedding_timeout: seconds for the minorminer fallback. budget: None, or an object whose
    ``wrap(child)`` returns the solver every call goes through (``flows.budget.RunBudget``:
    it estimates each call and refuses one that would overrun a QPU-time budget).
    """

    name = "qpu"

    def __init__(
        self,
        *,
        topology: str = "pegasus",
        mock: bool | None = None,
        mock_shape: list[int] | None = None,
        mock_beta: float = 1.0,
        mock_sweeps: int = 1000,
        solver: str | None = None,
        beta_eff: float = 1.0,
        calibration_rounds: int = 1,
        calibration_reads: int = 1000,
        num_bootstrap: int = 100,
        chain_strength: float | None = None,
        num_reads: int | None = None,
        annealing_time: float | None = None,
        embedding_dir: str | os.PathLike | None = None,
        embedding_timeout: float = 60.0,
        read_store: str | os.PathLike | None = None,
        retries: int = 3,
        retry_backoff: float = 2.0,
        budget: Any = None,
    ) -> None:
        if topology not in TOPOLOGIES:
            raise RbmdiffError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")
        for label, x in (("mock_beta", mock_beta), ("beta_eff", beta_eff),
                         ("embedding_timeout", embedding_timeout)):
            if not (math.isfinite(x) and x > 0):
                raise RbmdiffError(f"{label} must be a positive number, got {x}")
        for label, k, low in (("mock_sweeps", mock_sweeps, 1), ("calibration_rounds",
                              calibration_rounds, 0), ("calibration_reads", calibration_reads, 1),
                              ("num_bootstrap", num_bootstrap, 0)):
            if not isinstance(k, int) or k < low:
                raise RbmdiffError(f"{label} must be an integer ≥ {low}, got {k!r}")
        if num_reads is not None and (not isinstance(num_reads, int) or num_reads < 1):
            raise RbmdiffError(f"num_reads must be a positive integer or None, got {num_reads!r}")
        if chain_strength is not None and not chain_strength > 0:
            raise RbmdiffError(f"chain_strength must be positive, got {chain_strength}")
        if annealing_time is not None and not annealing_time > 0:
            raise RbmdiffError(f"annealing_time must be positive µs, got {annealing_time}")
        self.topology, self.mock, self.solver = topology, mock, solver
        self.mock_shape = list(mock_shape or MOCK_SHAPES[topology])
        self.mock_beta, self.mock_sweeps = mock_beta, mock_sweeps
        self.beta_eff, self.calibration_rounds = beta_eff, calibration_rounds
        self.calibration_reads, self.num_bootstrap = calibration_reads, num_bootstrap
        self.chain_strength, self.num_reads = chain_strength, num_reads
        self.annealing_time = annealing_time
        self.embedding_dir = Path(embedding_dir) if embedding_dir else default_embedding_dir()
        self.embedding_timeout = embedding_timeout
        if not isinstance(retries, int) or retries < 0 or not retry_backoff >= 0:
            raise RbmdiffError(
                f"need retries ≥ 0 and retry_backoff ≥ 0 s, got {retries}, {retry_backoff}"
            )
        self.read_store = Path(read_store) if read_store else None
        self.retries, self.retry_backoff = retries, retry_backoff
        self.budget = budget

    def params(self) -> dict:
        return {
            "topology": self.topology, "mock": self.mock, "mock_shape": self.mock_shape,
            "mock_beta": self.mock_beta, "mock_sweeps": self.mock_sweeps, "solver": self.solver,
            "beta_eff": self.beta_eff, "calibration_rounds": self.calibration_rounds,
            "calibration_reads": self.calibration_reads, "num_bootstrap": self.num_bootstrap,
            "chain_strength": self.chain_strength, "num_reads": self.num_reads,
            "annealing_time": self.annealing_time, "retries": self.retries,
        }

    def _use_mock(self) -> tuple[bool, str]:
        if self.mock is True:
            return True, "mock=True requested"
        if has_token():
            return False, "D-Wave token configured"
        if self.mock is False:
            raise RbmdiffError(
                "mock=False needs a D-Wave token: set DWAVE_API_TOKEN or run `dwave config "
                "create`; or drop mock=False to sample offline on MockDWaveSampler"
            )
        return True, "no D-Wave token configured (DWAVE_API_TOKEN unset, no dwave config file)"

    def _child(self, use_mock: bool) -> Any:
        if use_mock:
            return mock_solver(self.topology, self.mock_shape, beta=self.mock_beta,
                               sweeps=self.mock_sweeps)
        from dwave.system import DWaveSampler

        try:
            return DWaveSampler(solver=self.solver or {"topology__type": self.topology})
        except Exception as exc:  # dwave-cloud-client raises many kinds (auth, network, none)
            raise RbmdiffError(
                f"no D-Wave solver for topology {self.topology!r}"
                f"{f' named {self.solver!r}' if self.solver else ''} could be opened "
                f"({type(exc).__name__}: {exc}); pass mock=True to sample offline"
            ) from None

    def embed(self, n_visible: int, n_hidden: int, *, seed: int = 0) -> EmbeddedSolver:
        """Open the solver (QPU or mock), refuse K_{n,m} beyond its biclique limit before any
        search, and load or find the embedding (saved in ``embedding_dir``)."""
        n, m = n_visible, n_hidden
        use_mock, reason = self._use_mock()
        if use_mock:  # refuse an oversized RBM before building anything
            check_embeddable(n, m, self.topology, self.mock_shape)
        child = self._child(use_mock)
        topo = child.properties["topology"]
        topology, shape = topo["type"], list(topo["shape"])
        check_embeddable(n, m, topology, shape)
        embedding, method, path = load_or_find_embedding(
            child.to_networkx_graph(), n, m, topology=topology, shape=shape,
            folder=self.embedding_dir, timeout=self.embedding_timeout, seed=sampler_seed(seed),
        )
        return EmbeddedSolver(child, use_mock, reason, topology, shape, embedding, method, path)

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n) of 0/1."""
        check_request(rbm, num_samples, seed)
        timer = Timer()
        solver = self.embed(rbm.n_visible, rbm.n_hidden, seed=seed)
        j_range = tuple(solver.child.properties["j_range"])
        chain_strength = self.chain_strength or -j_range[0]
        if chain_strength > -j_range[0]:
            raise RbmdiffError(
                f"chain_strength {chain_strength} exceeds the solver's strongest coupling "
                f"{-j_range[0]} (j_range {list(j_range)}); with auto_scale=False use at most that"
            )
        run = _Run(self, solver, chain_strength, seed)

        # Calibration: sample at prefactor 1/β̂, re-estimate β̂ from the logical reads.
        beta_hat, calibration = self.beta_eff, []
        for _ in range(self.calibration_rounds):
            est = run.sample_and_estimate(rbm, 1 / beta_hat, self.calibration_reads)
            calibration.append(est["summary"])
            if math.isfinite(est["beta"]) and est["beta"] > 0:
                beta_hat = est["beta"]
        final = run.sample_and_estimate(rbm, 1 / beta_hat, num_samples)

        qpu_access = run.timing.get("qpu_access_time", 0.0)
        info = make_info(
            self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
            cost_units=qpu_access, cost_unit="qpu_access_us", **solver.info(),
            chain_strength=chain_strength, prefactor=1 / beta_hat, clipped=final["clipped"],
            chain_break_fraction=final["chain_break_fraction"],
            beta_eff=final["beta"], beta_eff_low=final["low"], beta_eff_high=final["high"],
            beta_model=final["beta"] / beta_hat, beta_model_low=final["low"] / beta_hat,
            beta_model_high=final["high"] / beta_hat, calibration=calibration,
            qpu_access_time=qpu_access, qpu_calls=run.calls, reused_calls=run.reused_calls,
            timing=dict(run.timing),
            problem_ids=run.problem_ids, sampler_seeds=run.seeds,
        )
        return Samples(v=final["v"], info=info)


# -- faults and the read store --------------------------------------------------------------
def _transient(exc: BaseException) -> bool:
    """Cloud faults worth retrying: timeouts, an offline solver, a failed upload, rate limits
    (HTTP 429) and server errors (5xx).  Anything else (a rejected problem, a solver failure,
    bad credentials) is permanent."""
    from dwave.cloud import exceptions as cloud

    if isinstance(exc, cloud.RequestTimeout | cloud.PollingTimeout | cloud.Timeout
                  | cloud.SolverOfflineError | cloud.ProblemUploadError):
        return True
    code = getattr(exc, "error_code", None)
    return isinstance(exc, cloud.SAPIError) and code is not None and (code == 429 or code >= 500)


def with_retries(call, *, retries: int, backoff: float, store: Path | None):
    """call() with up to ``retries`` retries of transient faults, sleeping backoff·2^k s."""
    for k in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if not _transient(exc):
                saved = f"; reads already returned are kept in {store}" if store else ""
                raise RbmdiffError(
                    f"QPU call failed ({type(exc).__name__}: {exc}){saved}"
                ) from None
            if k == retries:
                raise RbmdiffError(
                    f"QPU call still failing after {retries} retries "
                    f"({type(exc).__name__}: {exc}); try again later"
                ) from None
            _sleep(backoff * 2**k)
    raise AssertionError("unreachable")


def _sleep(seconds: float) -> None:  # a seam for tests
    import time

    time.sleep(seconds)


def call_key(h: dict, J: dict, kwargs: dict, *, chain_strength: float, embedding: Any,
             seed: int, call: int) -> str:
    """SHA-256 of everything that determines a solver call's reads (problem, parameters,
    embedding, run seed and call index): the read store's file name."""
    payload = {
        "h": sorted((str(k), float(v)) for k, v in h.items()),
        "J": sorted((str(a), str(b), float(v)) for (a, b), v in J.items()),
        "kwargs": {k: kwargs[k] for k in sorted(kwargs)}, "chain_strength": chain_strength,
        "embedding": sorted((str(k), list(map(int, v))) for k, v in dict(embedding).items()),
        "seed": seed, "call": call,
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


@dataclass
class EmbeddedSolver:
    """A solver (``child``: DWaveSampler or MockDWaveSampler) with the K_{n,m} embedding."""

    child: Any
    mock: bool
    mock_reason: str
    topology: str
    shape: list[int]
    embedding: dict[str, list[int]]
    method: str  # "busclique", "minorminer" or "cache"
    path: Path

    def info(self) -> dict:
        """Solver and embedding facts for a sampler's ``info``."""
        chains = [len(c) for c in self.embedding.values()]
        return {
            "solver": "mock" if self.mock else self.child.solver.name, "mock": self.mock,
            "mock_reason": self.mock_reason, "topology": self.topology,
            "topology_shape": self.shape, "embedding_method": self.method,
            "embedding_path": str(self.path), "chain_length_max": max(chains),
            "chain_length_mean": float(np.mean(chains)), "num_qubits": int(sum(chains)),
        }


class _Run:
    """One sampling run's solver calls: the embedded solver, seeds, summed timing."""

    def __init__(self, sampler: QPUSampler, solver: EmbeddedSolver, chain_strength: float,
                 seed: int) -> None:
        from dwave.system import FixedEmbeddingComposite

        self.sampler, self.seed = sampler, seed
        self.child, self.use_mock = solver.child, solver.mock
        budget = sampler.budget
        child = budget.wrap(solver.child) if budget is not None else solver.child
        self.composite = FixedEmbeddingComposite(child, solver.embedding)
        self.chain_strength = chain_strength
        self.h_range = tuple(solver.child.properties["h_range"])
        self.j_range = tuple(solver.child.properties["j_range"])
        self.max_reads = int(solver.child.properties.get("num_reads_range", [1, 10_000])[1])
        self.calls, self.seeds, self.timing, self.problem_ids = 0, [], {}, []
        self.reused_calls = 0

    def _stored(self, key: str) -> dimod.SampleSet | None:
        store = self.sampler.read_store
        path = store / f"{key}.json" if store is not None else None
        if path is None or not path.is_file():
            return None
        try:
            return dimod.SampleSet.from_serializable(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):  # a damaged entry is paid for again
            return None

    def _store(self, key: str, ss: dimod.SampleSet) -> None:
        store = self.sampler.read_store
        if store is not None:
            data = json.dumps(ss.to_serializable(), default=_jsonable).encode()
            atomic_write_bytes(store / f"{key}.json", data)

    def _call(self, h: dict, J: dict, num_reads: int) -> dimod.SampleSet:
        """One solver call, answered from the read store when this exact call (problem,
        parameters, run seed, call index) was paid for before; transient cloud faults are
        retried with exponential backoff, a permanent one is a one-line error."""
        from dwave.embedding import majority_vote

        kwargs: dict[str, Any] = {"num_reads": num_reads, "auto_scale": False,
                                  "answer_mode": "raw"}
        if self.sampler.annealing_time is not None:
            kwargs["annealing_time"] = self.sampler.annealing_time
        if self.use_mock:  # the mock's substitute annealer is seeded; the QPU is not
            self.seeds.append(sampler_seed(self.seed, self.calls))
            self.child.substitute_kwargs["seed"] = self.seeds[-1]
        key = call_key(h, J, kwargs, chain_strength=self.chain_strength,
                       embedding=self.composite.embedding, seed=self.seed, call=self.calls)
        stored = self._stored(key)
        self.calls += 1
        if stored is not None:
            self.reused_calls += 1
            return stored

        def attempt() -> dimod.SampleSet:
            ss = self.composite.sample_ising(
                h, J, chain_strength=self.chain_strength, chain_break_method=majority_vote,
                chain_break_fraction=True, return_embedding=True, **kwargs,
            )
            ss.resolve()
            return ss

        ss = with_retries(attempt, retries=self.sampler.retries,
                          backoff=self.sampler.retry_backoff, store=self.sampler.read_store)
        self._store(key, ss)
        for key, val in ss.info.get("timing", {}).items():  # µs; totals add up over calls
            if isinstance(val, int | float):
                total = not key.endswith("_per_sample")
                self.timing[key] = self.timing.get(key, 0.0) * total + float(val)
        if "problem_id" in ss.info:
            self.problem_ids.append(ss.info["problem_id"])
        return ss

    def sample_and_estimate(self, rbm: RBM, prefactor: float, num_reads: int) -> dict:
        """Reads of prefactor · E (clipped), split into logical v, and β_eff of the reads."""
        h, J, _, clipped = to_ising(rbm, prefactor=prefactor, h_range=self.h_range,
                                    j_range=self.j_range)
        per_call = min(self.sampler.num_reads or num_reads, self.max_reads)
        parts = []
        for start in range(0, num_reads, per_call):
            parts.append(self._call(h, J, min(per_call, num_reads - start)))
        ss = dimod.concatenate(parts) if len(parts) > 1 else parts[0]
        v, _ = split_samples(ss, rbm.n_visible, rbm.n_hidden)
        beta, low, high = estimate_beta(
            h, J, ss, num_bootstrap=self.sampler.num_bootstrap,
            seed=sampler_seed(self.seed, 10_000 + self.calls),
        )
        cbf = float(np.mean(ss.record.chain_break_fraction))
        summary = {"prefactor": prefactor, "reads": num_reads, "beta_eff": beta,
                   "beta_eff_low": low, "beta_eff_high": high, "chain_break_fraction": cbf,
                   "clipped": clipped}
        return {"v": v.to(torch.float32), "beta": beta, "low": low, "high": high,
                "clipped": clipped, "chain_break_fraction": cbf, "summary": summary}
