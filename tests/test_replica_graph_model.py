"""The replica graph checked against a naive model over random operation sequences."""

from __future__ import annotations

import posixpath

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from streamflow_data import ExecutionLocation, RemotePathMapper

LOCATIONS = [
    ExecutionLocation("d1", "n1"),
    ExecutionLocation("d1", "n2"),
    ExecutionLocation("d2", "n1"),
]
paths = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
locations = st.integers(0, len(LOCATIONS) - 1)
Key = tuple[int, str]


def ancestors(path: str) -> list[str]:
    found = []
    while path != "/":
        path = posixpath.dirname(path)
        found.append(path)
    return found


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


class ReplicaGraphMachine(RuleBasedStateMachine):
    """Registrations, relations and invalidations, compared with sets and a linear scan."""

    def __init__(self) -> None:
        super().__init__()
        self.mapper = RemotePathMapper()
        self.valid: set[Key] = set()
        self.explicit: set[Key] = set()
        """Registered themselves, not only as a parent directory."""
        self.holes: set[Key] = set()
        self.sets: list[set[Key]] = []

    def _set_of(self, key: Key) -> set[Key] | None:
        return next((members for members in self.sets if key in members), None)

    @rule(location=locations, path=paths)
    def register(self, location: int, path: str) -> None:
        self.mapper.register(LOCATIONS[location], path)
        for registered in [path, *ancestors(path)]:
            self.valid.add((location, registered))
        self.explicit.add((location, path))
        self.holes = {h for h in self.holes if not (h[0] == location and under(h[1], path))}

    @rule(data=st.data())
    def relate(self, data: st.DataObject) -> None:
        if len(self.valid) < 2:
            return
        keys = sorted(self.valid)
        first, second = data.draw(st.sampled_from(keys)), data.draw(st.sampled_from(keys))
        self.mapper.register_relation(
            self.mapper.find(LOCATIONS[first[0]], first[1]),  # type: ignore[arg-type]
            self.mapper.find(LOCATIONS[second[0]], second[1]),  # type: ignore[arg-type]
        )
        if first == second:
            return
        merged = (self._set_of(first) or {first}) | (self._set_of(second) or {second})
        self.sets = [s for s in self.sets if not s & merged] + [merged]

    @rule(location=locations, path=st.one_of(paths, st.just("/")))
    def invalidate(self, location: int, path: str) -> None:
        self.mapper.invalidate(LOCATIONS[location], path)
        gone = {
            key
            for key in self.valid
            if key[0] == location and (key[1] == path or key[1].startswith(path.rstrip("/") + "/"))
        }
        self.valid -= gone
        self.explicit -= gone
        self.sets = [kept for s in self.sets if len(kept := s - gone) > 1]
        if any((location, above) in self.explicit for above in ancestors(path)):
            self.holes.add((location, path))

    def _inside(self, path: str) -> set[Key]:
        """``path`` in each explicit directory replica around it and their relatives."""
        found: set[Key] = set()
        for top in ancestors(path):
            relative = path[len(top.rstrip("/")) :]
            for key in [key for key in self.explicit if key[1] == top]:
                for location, directory in (self._set_of(key) or {key}) & self.explicit:
                    inner = directory.rstrip("/") + relative
                    holes = [h for h in self.holes if h[0] == location and h[1] != directory]
                    if not any(under(inner, h[1]) and under(h[1], directory) for h in holes):
                        found.add((location, inner))
        return found

    @invariant()
    def queries_match_the_model(self) -> None:
        queried = {key[1] for key in self.valid} | {"/a", "/b/c", "/zzz", "/a/b/c/d"}
        for path in queried | {key[1] + "/z" for key in self.valid if key[1] != "/"}:
            expected = {key for key in self.valid if key[1] == path}
            for key in list(expected):
                expected |= self._set_of(key) or set()
            expected |= self._inside(path)
            got = {
                (LOCATIONS.index(replica.location), replica.path)
                for replica in self.mapper.get(path)
            }
            assert got == expected, path
            assert all(replica.valid for replica in self.mapper.get(path))
        assert len(self.mapper) == len(self.valid)


ReplicaGraphMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestReplicaGraphModel = ReplicaGraphMachine.TestCase
