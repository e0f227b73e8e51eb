"""Regularized Evolution (REA) as a stateless Optuna sampler.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019: keep a population of the P most recent models; each step draws S of them at random
(with replacement), mutates the best one ("tournament selection") and adds the child while the
oldest model dies ("aging"). Defaults P=10, S=3 are the NAS-Bench-201 paper's REA settings
(Dong & Yang, ICLR 2020), which the TR-NAS paper reuses (Sec. 4, Fig. 4).

The sampler keeps no state: on every trial it rebuilds the population from the study's
storage (the last P COMPLETE trials by completion time) and draws its random numbers from
``(seed, trial.number)``. One seed and one worker therefore give one reproducible sequence,
and any number of workers can share one storage.
"""
from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from harness import HarnessError
from harness.spaces import SearchSpace, get_space, is_complete


class RegularizedEvolutionSampler(BaseSampler):
    """REA over any registered search space (its distributions, ``random`` and ``mutate``).

    Args:
        space: a :class:`harness.spaces.SearchSpace` or a registered name (default ``"nb201"``).
        population_size: P, how many of the most recently completed trials form the population;
            until P trials are complete every trial is sampled uniformly at random.
        sample_size: S, tournament size, drawn from the population with replacement (1..P).
        mutation: one of the space's ``mutations`` (default: its first). NB201: ``"nb201"`` (the
            NB201 reference: random node, then one of its incoming edges) or ``"uniform_edge"``
            (NASLib: one of the 6 edges uniformly); the op always changes.
        seed: non-negative int; ``None`` draws one at construction.

    Parameters outside the space are sampled uniformly at random, also from
    ``(seed, trial.number, name)``. Trials without a complete candidate do not join the
    population. Only single-objective studies are supported.
    """

    #: The RNG depends on the trial number only, so workers can share one seed.
    stateless = True

    def __init__(self, population_size: int = 10, sample_size: int = 3, mutation: "str | None" = None,
                 seed: "int | None" = None, space: "SearchSpace | str" = "nb201") -> None:
        self.space = get_space(space) if isinstance(space, str) else space
        if not _is_int(population_size) or population_size < 1:
            raise HarnessError(f"population_size {population_size!r}: must be an integer >= 1")
        if not _is_int(sample_size) or not 1 <= sample_size <= population_size:
            raise HarnessError(
                f"sample_size {sample_size!r}: must be an integer in 1..population_size ({population_size})")
        mutation = self.space.mutations[0] if mutation is None else mutation
        if mutation not in self.space.mutations:
            raise HarnessError(f"mutation {mutation!r}: unknown for space {self.space.name!r} "
                               f"(known: {', '.join(self.space.mutations)})")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        elif not _is_int(seed) or seed < 0:
            raise HarnessError(f"seed {seed!r}: must be a non-negative integer or None")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation = mutation
        self.seed = int(seed)

    def __repr__(self) -> str:
        return (f"RegularizedEvolutionSampler(population_size={self.population_size}, "
                f"sample_size={self.sample_size}, mutation={self.mutation!r}, seed={self.seed}, "
                f"space={self.space.name!r})")

    # -- Optuna interface -------------------------------------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) != 1:
            raise HarnessError(
                f"study {study.study_name!r}: RegularizedEvolutionSampler needs one objective, "
                f"the study has {len(study.directions)} directions")
        return self.space.distributions()

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        return self.space.to_params(self.propose(study, trial.number))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # A throw-away RandomSampler seeded per (seed, trial, param): no state survives the call.
        seed = np.random.SeedSequence([self.seed, trial.number, zlib.crc32(param_name.encode())])
        fallback = RandomSampler(seed=int(seed.generate_state(1)[0]))
        return fallback.sample_independent(study, trial, param_name, param_distribution)

    # -- REA itself -------------------------------------------------------------------------

    def population(self, study: Study) -> list[FrozenTrial]:
        """The last P COMPLETE trials holding a complete candidate, oldest first (aging)."""
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
        # Completion time decides who dies first; the number only breaks exact ties.
        done.sort(key=lambda t: (t.datetime_complete, t.number))
        population: list[FrozenTrial] = []
        for t in reversed(done):  # the youngest first: decoding every trial's candidate is O(trials)
            if len(population) == self.population_size:
                break
            if is_complete(self.space, t.params):
                population.append(t)
        return population[::-1]

    def propose(self, study: Study, trial_number: int):
        """The candidate for trial ``trial_number``: random until P trials are complete, else a
        mutated tournament winner."""
        rng = np.random.default_rng([self.seed, trial_number])
        population = self.population(study)
        if len(population) < self.population_size:
            return self.space.random(rng)
        parent = self.tournament(population, rng, study.direction)
        return self.space.mutate(self.space.from_params(parent.params), rng, self.mutation)

    def tournament(self, population: Sequence[FrozenTrial], rng: np.random.Generator,
                   direction: StudyDirection) -> FrozenTrial:
        """Draw S members with replacement; the best by ``direction`` wins (first drawn on ties)."""
        picks = rng.integers(0, len(population), size=self.sample_size)
        values = np.array([population[i].value for i in picks], dtype=np.float64)
        best = np.argmax(values) if direction == StudyDirection.MAXIMIZE else np.argmin(values)
        return population[int(picks[best])]


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
