"""Change detection: the source's rows against the last state Accord has from that source.

Each run publishes only what changed. The state keeps, per key, the user id, the status and
an 8-byte BLAKE2b digest per mapped field (no copy of the HR data: compact, and nothing
personal beyond the published user name), so the diff can name the changed fields; the events
carry the new values from the rows.

What a key's status change publishes (old status in the state, new status from the row):

| before \\ row  | active          | inactive        | gone       |
|---------------|-----------------|-----------------|------------|
| (no state)    | created         | created (inactive) | -       |
| active        | -               | deactivated     | deleted    |
| inactive      | reactivated     | -               | deleted    |
| deleted       | reactivated     | deactivated     | -          |

A row that disappears is deleted (the leaver) but its key stays in the state as a tombstone
with its user id. When it comes back, the same identity is reactivated, not created anew:
the registry still holds it (a user.created for a known user id is taken as an update and
starts no joiner), a leaver's accounts are only disabled during the retention period and a
reactivation enables them again, and a row missing from one night's export must not give a
person a second identity. Changed fields come with it as a user.updated.

A field change publishes user.updated; the reactivation comes before it (the mover runs on
an active identity), a deactivation after it.

New keys are handled after the whole export, in key order, so which of two new joiners
wanting the same user name gets the plain one does not depend on the export's row order. A
taken user name (by another key of this source or by an identity Accord has, given as
`Existing.user_names`) becomes `name2`, `name3`... and is reported. The name is chosen once:
later runs keep it unless the source's name for the person changes (a rename).

Correlation: a new key whose employee number or e-mail matches one existing identity is
linked to it (a user.updated of that identity, not a user.created); rules are tried in the
configured order, the first that matches anything decides. Several identities, or one
another key of this source already owns, make the row held and reported: never guessed. The
link also says what the row says of the status: an active row linked to a deactivated or
deleted identity reactivates it first (a rehire), an inactive row linked to an active one
deactivates it after the update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from accord.sources.mapping import MappedRow
from accord.sources.problems import ProblemKind, RowProblem

DIGEST_SIZE = 8


class Status(StrEnum):
    """A key's status in the state."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DELETED = "deleted"
    """A tombstone: the row is gone, the user id is kept for when it returns."""


class ChangeKind(StrEnum):
    """The identity event a change becomes."""

    CREATED = "created"
    UPDATED = "updated"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    DELETED = "deleted"


@dataclass(slots=True)
class KeyState:
    """What the state keeps per key (about 120 bytes with its strings)."""

    user_id: str
    status: Status
    user_name: str
    """The user name as published (with its suffix, if one was given)."""
    digest: bytes
    """DIGEST_SIZE bytes per field of `SourceState.fields`, in that order."""


@dataclass
class SourceState:
    """The last state Accord has from one source."""

    fields: tuple[str, ...] = ()
    entries: dict[str, KeyState] = field(default_factory=dict)

    def active_count(self) -> int:
        """Identities this source has active: the base of the safety percentages."""
        return sum(1 for entry in self.entries.values() if entry.status is Status.ACTIVE)


@dataclass(frozen=True)
class Existing:
    """The identities Accord has besides what this source's state says.

    `user_names` maps a taken name to its owner's user id (not a set: an identity linked to
    this source keeps its own name without counting as taken). `by_field` maps a correlation
    field to its normalised values' user ids; build it with `Existing.of`.
    """

    user_names: Mapping[str, str] = field(default_factory=dict)
    by_field: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    inactive: frozenset[str] = frozenset()
    """User ids of identities that are deactivated or deleted: an active row linked to one
    brings it back (a rehire), an inactive row linked to an active one deactivates it."""

    @classmethod
    def of(cls, identities: Iterable[tuple[str, str, str | None, str | None]]) -> Existing:
        """From (user_id, user_name, employee_number, email) tuples; e-mails match without
        case, employee numbers as written (trimmed)."""
        names: dict[str, str] = {}
        by_field: dict[str, dict[str, tuple[str, ...]]] = {"employee_number": {}, "email": {}}
        for user_id, user_name, employee_number, email in identities:
            names[user_name] = user_id
            for name, value in (("employee_number", employee_number), ("email", email)):
                if value:
                    index = by_field[name]
                    normal = normalise(name, value)
                    index[normal] = (*index.get(normal, ()), user_id)
        return cls(names, by_field)


def normalise(field_name: str, value: str) -> str:
    """A correlation value as compared: e-mail addresses without case."""
    value = value.strip()
    return value.casefold() if field_name == "email" else value


@dataclass(frozen=True, slots=True)
class Change:
    """One identity event to publish; `values` (aligned with the state's fields) for
    created and updated."""

    kind: ChangeKind
    key: str
    user_id: str
    user_name: str
    active: bool
    values: tuple[str | None, ...] | None = None
    changed: tuple[str, ...] = ()
    """Changed fields of an update (all fields for a creation or a link)."""
    linked: bool = False
    """An update that links an existing identity found by correlation."""


@dataclass
class DiffResult:
    """The changes in publishing order, the state to keep once they are published, and
    the report."""

    changes: list[Change]
    state: SourceState
    problems: list[RowProblem]

    def count(self, kind: ChangeKind) -> int:
        """How many changes of one kind."""
        return sum(1 for change in self.changes if change.kind is kind)


def digest(values: Sequence[str | None]) -> bytes:
    """Per-field digests; None and "" differ (the mapper turns "" into None anyway)."""
    return b"".join(
        hashlib.blake2b(
            b"\x00" if value is None else b"\x01" + value.encode("utf-8", "surrogatepass"),
            digest_size=DIGEST_SIZE,
        ).digest()
        for value in values
    )


class _Run:
    """One diff: the state being built, the names taken, the report."""

    def __init__(
        self,
        previous: SourceState,
        fields: tuple[str, ...],
        existing: Existing,
        correlation: Sequence[str],
    ) -> None:
        self.previous = previous
        self.fields = fields
        self.existing = existing
        self.correlation = correlation
        self.entries: dict[str, KeyState] = {}
        self.changes: list[Change] = []
        self.problems: list[RowProblem] = []
        self.names = {entry.user_name: entry.user_id for entry in previous.entries.values()}
        self.owners = {entry.user_id: key for key, entry in previous.entries.items()}
        self.seen: set[str] = set()
        self.old_positions = _positions(previous.fields, fields)

    def row(self, row: MappedRow, new_keys: list[tuple[MappedRow, bytes]]) -> None:
        if row.key in self.seen:
            self._problem(ProblemKind.DUPLICATE_KEY, row, "the key appeared earlier: first taken")
            return
        self.seen.add(row.key)
        fingerprint = digest(row.values)
        old = self.previous.entries.get(row.key)
        if old is None:
            new_keys.append((row, fingerprint))
        else:
            self._known(row, fingerprint, old)

    def _known(self, row: MappedRow, fingerprint: bytes, old: KeyState) -> None:
        changed = self._changed(old.digest, fingerprint)
        user_name = old.user_name
        if "user_name" in changed:
            user_name = self._unique(row, old.user_id)
        status = Status.ACTIVE if row.active else Status.INACTIVE
        self.entries[row.key] = KeyState(old.user_id, status, user_name, fingerprint)
        status_change = None
        if status is not old.status:
            reactivates = status is Status.ACTIVE
            status_change = ChangeKind.REACTIVATED if reactivates else ChangeKind.DEACTIVATED
        if status_change is ChangeKind.REACTIVATED:
            self._status(status_change, row.key, old.user_id, user_name, row.active)
        if changed:
            self.changes.append(
                Change(ChangeKind.UPDATED, row.key, old.user_id, user_name, row.active,
                       row.values, changed)
            )  # fmt: skip
        if status_change is ChangeKind.DEACTIVATED:
            self._status(status_change, row.key, old.user_id, user_name, row.active)

    def new(self, row: MappedRow, fingerprint: bytes) -> None:
        held, linked = self._correlate(row)
        if held:
            return
        user_id = linked or row.user_id
        if linked is None and user_id in self.owners:  # a mapped user_id another key has
            self._problem(ProblemKind.AMBIGUOUS, row, f"user id {user_id} is another key's")
            return
        self.owners[user_id] = row.key
        user_name = self._unique(row, user_id)
        status = Status.ACTIVE if row.active else Status.INACTIVE
        self.entries[row.key] = KeyState(user_id, status, user_name, fingerprint)
        kind = ChangeKind.CREATED if linked is None else ChangeKind.UPDATED
        was_active = linked is not None and linked not in self.existing.inactive
        if linked is not None and row.active and not was_active:
            self._status(ChangeKind.REACTIVATED, row.key, user_id, user_name, True)
        self.changes.append(
            Change(kind, row.key, user_id, user_name, row.active, row.values, self.fields,
                   linked=linked is not None)
        )  # fmt: skip
        if linked is not None and not row.active and was_active:
            self._status(ChangeKind.DEACTIVATED, row.key, user_id, user_name, False)

    def gone(self) -> None:
        for key, old in self.previous.entries.items():
            if key in self.seen:
                continue
            if old.status is not Status.DELETED:
                self._status(ChangeKind.DELETED, key, old.user_id, old.user_name, False)
            self.entries[key] = KeyState(old.user_id, Status.DELETED, old.user_name, old.digest)

    def _correlate(self, row: MappedRow) -> tuple[bool, str | None]:
        """(held, linked user id): held when reported as ambiguous; no user id: create."""
        for rule in self.correlation:
            value = row.values[self.fields.index(rule)] if rule in self.fields else None
            if value is None:
                continue
            found = set(self.existing.by_field.get(rule, {}).get(normalise(rule, value), ()))
            if not found:
                continue
            if len(found) > 1:
                ids = ", ".join(sorted(found))
                self._problem(ProblemKind.AMBIGUOUS, row, f"{rule} matches {ids}: held")
                return True, None
            (user_id,) = found
            owner = self.owners.get(user_id)
            if owner is not None:
                reason = f"{rule} matches {user_id}, which key {owner} already has: held"
                self._problem(ProblemKind.AMBIGUOUS, row, reason)
                return True, None
            return False, user_id
        return False, None

    def _unique(self, row: MappedRow, user_id: str) -> str:
        wanted = row.values[self.fields.index("user_name")] or ""
        candidate, number = wanted, 1
        while self._owner(candidate) not in (None, user_id):
            number += 1
            candidate = f"{wanted}{number}"
        if candidate != wanted:
            reason = f"user name {wanted} is taken: {candidate} given"
            self._problem(ProblemKind.USER_NAME_TAKEN, row, reason)
        self.names[candidate] = user_id
        return candidate

    def _owner(self, name: str) -> str | None:
        owner = self.names.get(name)
        return owner if owner is not None else self.existing.user_names.get(name)

    def _changed(self, old: bytes, new: bytes) -> tuple[str, ...]:
        if old == new and self.old_positions is None:
            return ()
        size = DIGEST_SIZE
        changed = []
        for index, name in enumerate(self.fields):
            position = index if self.old_positions is None else self.old_positions[index]
            before = None if position is None else old[position * size : (position + 1) * size]
            if before != new[index * size : (index + 1) * size]:
                changed.append(name)
        return tuple(changed)

    def _status(self, kind: ChangeKind, key: str, user_id: str, name: str, active: bool) -> None:
        self.changes.append(Change(kind, key, user_id, name, active))

    def _problem(self, kind: ProblemKind, row: MappedRow, reason: str) -> None:
        self.problems.append(RowProblem(kind, row.line, reason, row.key))


def _positions(old: tuple[str, ...], new: tuple[str, ...]) -> list[int | None] | None:
    """Where each new field was in the old digest; None when the fields did not change."""
    if old == new:
        return None
    return [old.index(name) if name in old else None for name in new]


def diff(
    previous: SourceState,
    rows: Iterable[MappedRow],
    *,
    fields: tuple[str, ...],
    existing: Existing | None = None,
    correlation: Sequence[str] = (),
) -> DiffResult:
    """Compare a source's mapped rows (a stream, read once) with its previous state.

    `fields` are the mapper's (`RowMapper.fields`), `correlation` the configured rules'
    fields in order. Nothing is published here: the caller judges the result's safety,
    publishes its changes, and only then keeps its state.
    """
    run = _Run(previous, fields, existing or Existing(), correlation)
    new_keys: list[tuple[MappedRow, bytes]] = []
    for row in rows:
        run.row(row, new_keys)
    new_keys.sort(key=lambda pair: pair[0].key)
    for row, fingerprint in new_keys:
        run.new(row, fingerprint)
    run.gone()
    return DiffResult(run.changes, SourceState(fields, run.entries), run.problems)
