"""Checkpoints: how a spec names them, and how a pre-training step becomes a hub revision.

Hub models publish pre-training steps as branches, each family in its own naming (docs/families.md §1):
`allenai/OLMo-1B-hf` names them `step{N}-tokens{M}B`, OLMo-2 `stage1-step{N}-tokens{M}B`, Pythia
`step{N}`, SmolLM2 `step-{N}`. M cannot be computed from N (it is rounded inconsistently), so a step is
resolved by listing the repo's branches at run time and matching the family's pattern against each name.
A checkpoint's identity (for ids) is how the spec names it, not the resolved branch: one step maps to one
branch, and planning must work offline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CheckpointKind = Literal["main", "step", "revision", "local"]


class CheckpointResolutionError(ValueError):
    """A checkpoint could not be turned into something `from_pretrained` can load."""


# ------------------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class RevisionInfo:
    """What a branch name says about its checkpoint."""

    revision: str
    step: int
    stage: int | None = None
    ingredient: int | None = None
    tokens_b: float | None = None  # billions of tokens, as the name gives them (None: not named)


@dataclass(frozen=True)
class Family:
    """One way of naming pre-training checkpoints as hub branches (docs/families.md §1).

    `pattern` must match a whole branch name; its named groups are `step` (required) and optionally
    `tokens` (billions, as the name writes them), `stage` and `ingredient`.
    """

    name: str
    pattern: re.Pattern[str]
    example: str  # a branch name in this family's naming, for messages
    tokens_per_step: int | None = None  # a fixed batch (Pythia): tokens seen = step x this
    default_stage: int | None = None  # a bare step means this stage (OLMo-2's pre-training is stage 1)

    @property
    def has_stages(self) -> bool:
        return "stage" in self.pattern.groupindex

    @property
    def has_ingredients(self) -> bool:
        return "ingredient" in self.pattern.groupindex

    def parse(self, revision: str) -> RevisionInfo | None:
        """The step (and stage, ingredient, tokens) a branch names; None if it is not in this naming."""
        match = self.pattern.fullmatch(revision)
        if match is None:
            return None
        groups = match.groupdict()

        def number(key: str) -> int | None:
            return int(groups[key]) if groups.get(key) is not None else None

        tokens = float(groups["tokens"]) if groups.get("tokens") is not None else None
        return RevisionInfo(revision, int(groups["step"]), number("stage"), number("ingredient"), tokens)

    def step_of(self, revision: str) -> int | None:
        info = self.parse(revision)
        return info.step if info else None

    def tokens_of(self, revision: str) -> float | None:
        """Billions of tokens seen at this checkpoint: parsed where the name gives them (OLMo's
        `tokens{M}B`), else step x tokens_per_step where the batch is fixed (Pythia), else None.

        OLMo-2's stage-2 names count tokens from the start of stage 2 (docs/families.md §2)."""
        info = self.parse(revision)
        if info is None:
            return None
        if info.tokens_b is not None:
            return info.tokens_b
        return self.tokens_at(info.step)

    def tokens_at(self, step: int) -> float | None:
        """Billions of tokens after `step` steps, where the family's batch is fixed; None otherwise."""
        return step * self.tokens_per_step / 1e9 if self.tokens_per_step else None

    def check_stage(self, stage: int | None, ingredient: int | None) -> None:
        """ValueError if this family cannot name a checkpoint by that stage or ingredient."""
        if stage is not None and not self.has_stages:
            raise ValueError(f"{self.name} checkpoints have no stages (e.g. {self.example!r}); drop 'stage'")
        if ingredient is not None and not self.has_ingredients:
            raise ValueError(f"{self.name} checkpoints have no ingredients (e.g. {self.example!r}); "
                             "drop 'ingredient'")

    def revision_for(self, step: int, branches: Iterable[str], *, stage: int | None = None,
                     ingredient: int | None = None, repo: str = "") -> str:
        """The one branch of `branches` naming `step` (in `stage`/`ingredient` where the family has them).

        A bare step means `default_stage` and no ingredient. `CheckpointResolutionError` when none
        matches (listing the nearest existing steps of that stage) or several do.
        """
        self.check_stage(stage, ingredient)
        if stage is None and self.has_stages:
            stage = self.default_stage
        infos = [info for info in (self.parse(b) for b in branches) if info is not None]
        same_run = [i for i in infos if (not self.has_stages or i.stage == stage) and i.ingredient == ingredient]
        where = _describe_run(stage if self.has_stages else None, ingredient)
        about = f"{repo!r} " if repo else "the listing "
        matches = sorted(i.revision for i in same_run if i.step == step)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise CheckpointResolutionError(
                f"step {step}{where} of {about}matches several revisions {matches}; name one explicitly")
        if not same_run:
            runs = sorted({_describe_run(i.stage, i.ingredient).strip(" ,") for i in infos})
            hint = f"; it has {runs}" if runs and runs != [""] else (
                f"; no branch is named like {self.example!r} ({self.name})")
            raise CheckpointResolutionError(f"{about}has no revision{where or ''} for step {step}{hint}")
        steps = sorted({i.step for i in same_run})
        nearest = sorted(sorted(steps, key=lambda s: (abs(s - step), s))[:5])
        raise CheckpointResolutionError(
            f"{about}has no revision for step {step}{where}; nearest existing steps: {nearest}")


def _describe_run(stage: int | None, ingredient: int | None) -> str:
    parts = ([f"stage {stage}"] if stage is not None else []) + (
        [f"ingredient {ingredient}"] if ingredient is not None else [])
    return f" ({', '.join(parts)})" if parts else ""


_STAGED = re.compile(r"stage(?P<stage>\d+)-(?:ingredient(?P<ingredient>\d+)-)?step(?P<step>\d+)"
                     r"(?:-tokens(?P<tokens>\d+(?:\.\d+)?)B)?")
PYTHIA_TOKENS_PER_STEP = 2_097_152  # 1024 sequences x 2048 tokens, fixed for the whole run

FAMILIES: dict[str, Family] = {
    # today's rule, and the fallback for repos no rule below names: `step{N}` or `step{N}-...`
    "steps": Family("steps", re.compile(r"step(?P<step>\d+)(?:-tokens(?P<tokens>\d+(?:\.\d+)?)B|-.*)?"),
                    "step1000-tokens4B"),
    "olmo": Family("olmo", re.compile(r"step(?P<step>\d+)-tokens(?P<tokens>\d+(?:\.\d+)?)B"),
                   "step738020-tokens3094B"),
    "olmo2": Family("olmo2", _STAGED, "stage1-step140000-tokens294B", default_stage=1),
    "olmo3": Family("olmo3", _STAGED, "stage1-step1000", default_stage=1),
    "pythia": Family("pythia", re.compile(r"step(?P<step>\d+)"), "step143000",
                     tokens_per_step=PYTHIA_TOKENS_PER_STEP),
    "smollm2": Family("smollm2", re.compile(r"step-(?P<step>\d+)"), "step-125000"),
}
FAMILY_NAMES = tuple(name for name in FAMILIES if name != "steps")

# Repo ids -> family, first match wins (case-insensitive, on the repo's name after the org).
_DETECT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^pythia-", re.I), "pythia"),
    (re.compile(r"^olmo-2-", re.I), "olmo2"),
    (re.compile(r"^olmo-3-", re.I), "olmo3"),
    (re.compile(r"^olmo-\d+(\.\d+)?b", re.I), "olmo"),
    (re.compile(r"^smollm2-", re.I), "smollm2"),
)

_PLACEHOLDER = re.compile(r"\{(\w+)(?::0?(\d+)d)?\}")
_PLACEHOLDER_REGEX = {"step": r"\d+", "tokens": r"\d+(?:\.\d+)?", "stage": r"\d+", "ingredient": r"\d+"}


def pattern_family(revision_pattern: str, tokens_per_step: int | None = None) -> Family:
    """A family from a user's `revision_pattern` (docs/families.md §4): a format string with `{step}`
    (`"ckpt_{step:03d}"`, `"iter_{step}"`; also `{tokens}`, `{stage}`, `{ingredient}`), or a regex with a
    named group `step` (`"ckpt_(?P<step>\\d+)"`). ValueError naming what is wrong."""
    text = revision_pattern.strip()
    if not text:
        raise ValueError("revision_pattern is empty")
    if "(?P<" in text:
        try:
            compiled = re.compile(text)
        except re.error as err:
            raise ValueError(f"revision_pattern {text!r} is not a valid regex: {err}") from None
        unknown = set(compiled.groupindex) - set(_PLACEHOLDER_REGEX)
        if unknown:
            raise ValueError(f"revision_pattern {text!r}: unknown group(s) {sorted(unknown)}; "
                             f"allowed: {sorted(_PLACEHOLDER_REGEX)}")
    else:
        parts, last, seen = [], 0, set()
        for match in [*_PLACEHOLDER.finditer(text), None]:
            literal = text[last:match.start() if match else len(text)]
            if "{" in literal or "}" in literal:
                raise ValueError(f"revision_pattern {text!r}: a placeholder is malformed; write {{step}} or "
                                 "{step:03d} (zero-padded)")
            parts.append(re.escape(literal))
            if match is None:
                break
            name = match.group(1)
            if name not in _PLACEHOLDER_REGEX:
                raise ValueError(f"revision_pattern {text!r}: unknown placeholder {{{name}}}; "
                                 f"allowed: {sorted(_PLACEHOLDER_REGEX)}")
            if name in seen:
                raise ValueError(f"revision_pattern {text!r}: {{{name}}} appears twice")
            seen.add(name)
            parts.append(f"(?P<{name}>{_PLACEHOLDER_REGEX[name]})")
            last = match.end()
        compiled = re.compile("".join(parts))
    if "step" not in compiled.groupindex:
        raise ValueError(f"revision_pattern {text!r} has no step: write {{step}} or a regex group (?P<step>...)")
    if tokens_per_step is not None and tokens_per_step < 1:
        raise ValueError(f"tokens_per_step {tokens_per_step} is not a positive integer")
    example = _PLACEHOLDER.sub(lambda m: "1000", text) if "(?P<" not in text else text
    return Family(f"pattern:{text}", compiled, example, tokens_per_step=tokens_per_step)


def detect_family(repo_id: str) -> str | None:
    """The family a hub repo id names (`EleutherAI/pythia-160m` -> "pythia"); None if no rule knows it."""
    name = repo_id.rstrip("/").rsplit("/", 1)[-1]
    for rule, family in _DETECT:
        if rule.search(name):
            return family
    return None


def family_for(repo_id: str, declared: str | None = None, revision_pattern: str | None = None,
               tokens_per_step: int | None = None) -> Family:
    """The checkpoint family of `repo_id`: a `revision_pattern`, else the declared name, else detected
    from the repo id, else the generic `step{N}[-...]` rule. ValueError for an unknown name or a bad
    pattern, with what is allowed."""
    if revision_pattern is not None:
        if declared is not None:
            raise ValueError("give either a family or a revision_pattern, not both")
        return pattern_family(revision_pattern, tokens_per_step)
    if declared is not None:
        if declared not in FAMILY_NAMES:
            import difflib

            close = difflib.get_close_matches(declared, FAMILY_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown checkpoint family {declared!r}{hint}; known: {list(FAMILY_NAMES)}, "
                             "or give a revision_pattern")
        family = FAMILIES[declared]
    else:
        family = FAMILIES[detect_family(repo_id) or "steps"]
    if tokens_per_step is not None:  # a user who knows the batch gets a tokens axis for any family
        from dataclasses import replace

        family = replace(family, tokens_per_step=tokens_per_step)
    return family


# ------------------------------------------------------------------------------------ spec entries
@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of the model family, as the spec names it."""

    kind: CheckpointKind
    label: str  # short human name: "1000", "main", "step1000-tokens4B", or a local dir's name
    step: int | None = None  # pre-training step, for curves and ordering
    revision: str | None = None  # explicit hub revision ("main" for the final model)
    path: str | None = None  # local directory (as written in the spec)
    stage: int | None = None  # staged families (OLMo-2): which stage's step (None: the family's default)
    ingredient: int | None = None  # OLMo-2 stage 2: which data mix

    def identity(self) -> dict[str, Any]:
        """The fields that define this checkpoint in ids (no resolved branch, no absolute paths).

        stage and ingredient appear only when set, so the ids of every earlier spec stay as they were."""
        out: dict[str, Any] = {"kind": self.kind, "step": self.step, "revision": self.revision, "path": self.path}
        if self.stage is not None:
            out["stage"] = self.stage
        if self.ingredient is not None:
            out["ingredient"] = self.ingredient
        return out


def parse_revision(revision: str) -> RevisionInfo | None:
    """Step (stage, ingredient, tokens) of a branch name in any built-in family's naming; None if none."""
    for name in ("olmo", "olmo2", "smollm2", "steps"):  # most specific first
        info = FAMILIES[name].parse(revision)
        if info is not None:
            return info
    return None


def step_from_revision(revision: str) -> int | None:
    info = parse_revision(revision)
    return info.step if info else None


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or os.sep in value


def _nonneg(value: Any, key: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"checkpoint {key} {value!r} is not a non-negative integer")
    return value


def parse_checkpoint(value: Any) -> CheckpointRef:
    """Turn a spec entry into a `CheckpointRef`.

    Accepted: an int step (`1000`); `"main"`; a revision string (`"step1000-tokens4B"`,
    `"stage2-ingredient1-step1000-tokens3B"`); a local directory (`"./ckpts/step100"`); or a mapping
    `{path: DIR, step: N, name: LABEL}` / `{revision: REV, step: N}` / `{step: N}` /
    `{step: N, stage: S, ingredient: K}` (staged families, docs/families.md §2).
    """
    if isinstance(value, bool):
        raise ValueError(f"checkpoint {value!r} is not a step, 'main', a revision or a path")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"checkpoint step {value} is negative")
        return CheckpointRef(kind="step", label=str(value), step=value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("checkpoint is an empty string")
        if text == "main":
            return CheckpointRef(kind="main", label="main", revision="main")
        if text.isdigit():
            return CheckpointRef(kind="step", label=text, step=int(text))
        if looks_like_path(text):
            return CheckpointRef(kind="local", label=os.path.basename(text.rstrip("/")), path=text,
                                 step=step_from_revision(os.path.basename(text.rstrip("/"))))
        return _revision_ref(text, text, None)
    if isinstance(value, dict):
        allowed = {"path", "revision", "step", "name", "stage", "ingredient"}
        unknown = set(value) - allowed
        if unknown:
            raise ValueError(f"unknown checkpoint key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        step = _nonneg(value.get("step"), "step")
        stage, ingredient = _nonneg(value.get("stage"), "stage"), _nonneg(value.get("ingredient"), "ingredient")
        if "path" in value and "revision" in value:
            raise ValueError("a checkpoint has either 'path' or 'revision', not both")
        if (stage is not None or ingredient is not None) and ("path" in value or "revision" in value):
            raise ValueError("'stage' and 'ingredient' go with 'step' (a revision or a path names its own)")
        if ingredient is not None and stage is None:
            raise ValueError("'ingredient' needs its 'stage' (OLMo-2: stage: 2, ingredient: 1)")
        if "path" in value:
            path = str(value["path"])
            label = str(value.get("name") or os.path.basename(path.rstrip("/")))
            return CheckpointRef(kind="local", label=label, path=path,
                                 step=step if step is not None else step_from_revision(label))
        if "revision" in value:
            rev = str(value["revision"])
            if rev == "main":
                return CheckpointRef(kind="main", label=str(value.get("name") or rev), revision=rev, step=step)
            return _revision_ref(rev, str(value.get("name") or rev), step)
        if step is not None:
            default = f"{_stage_label(stage, ingredient)}{step}" if stage is not None else str(step)
            return CheckpointRef(kind="step", label=str(value.get("name") or default), step=step,
                                 stage=stage, ingredient=ingredient)
        raise ValueError("a checkpoint mapping needs 'path', 'revision' or 'step'")
    raise ValueError(f"checkpoint {value!r} is not a step, 'main', a revision or a path")


def _stage_label(stage: int, ingredient: int | None) -> str:
    return f"stage{stage}-" + (f"ingredient{ingredient}-" if ingredient is not None else "") + "step"


def _revision_ref(revision: str, label: str, step: int | None) -> CheckpointRef:
    info = parse_revision(revision)
    return CheckpointRef(kind="revision", label=label, revision=revision,
                         step=step if step is not None else (info.step if info else None),
                         stage=info.stage if info else None, ingredient=info.ingredient if info else None)


# --------------------------------------------------------------------------------------- local files
def local_path(path: str, base_dir: str = ".") -> str:
    """A local path as the spec writes it, made absolute against the spec's folder."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def check_local_checkpoints(model_id: str, refs: Iterable[CheckpointRef], base_dir: str = ".") -> None:
    """Fail on a local checkpoint (or a path-like model id) whose directory is missing, offline and fast.

    `ptft plan` and the grid call this before anything else; hub steps are left to `RevisionResolver`.
    """
    refs = list(refs)
    for i, ref in enumerate(refs):
        if ref.kind != "local":
            continue
        path = local_path(ref.path or "", base_dir)
        if not os.path.isdir(path):
            what = "is a file, not a directory" if os.path.exists(path) else "does not exist"
            raise CheckpointResolutionError(
                f"model.checkpoints[{i}]: checkpoint directory {ref.path!r} {what} ({path})")
    # model.id is loaded only for checkpoints that are not local dirs (`resolve`: a local model has "main")
    # A hub id is "org/name": only an explicit path, or one of more than two parts, must be a local folder.
    path_like = model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") >= 2
    if any(ref.kind != "local" for ref in refs) and path_like and "://" not in model_id:
        here, there = os.path.expanduser(model_id), local_path(model_id, base_dir)
        if not (os.path.isdir(here) or os.path.isdir(there)):
            raise CheckpointResolutionError(
                f"model.id: {model_id!r} looks like a local model directory, but {there} does not exist")


# ----------------------------------------------------------------------------------- the hub, at run time
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_branches(model_id: str) -> list[str]:
    from huggingface_hub import list_repo_refs

    token = os.environ.get("HF_TOKEN")  # read by name; never logged
    return [branch.name for branch in list_repo_refs(model_id, token=token).branches]


class RevisionResolver:
    """Resolves steps to hub branches, listing each repo's branches at most once.

    `families` maps a model id to its declared `Family` (the spec's); a model it does not name gets the
    family its repo id names (`family_for`).
    """

    def __init__(self, list_branches: Callable[[str], Iterable[str]] | None = None,
                 families: Mapping[str, Family] | None = None):
        self._list_branches = list_branches or _hub_branches
        self._cache: dict[str, list[str]] = {}
        self.families: dict[str, Family] = dict(families or {})

    def family(self, model_id: str) -> Family:
        return self.families.get(model_id) or family_for(model_id)

    def branches(self, model_id: str) -> list[str]:
        if model_id not in self._cache:
            if self._list_branches is _hub_branches and hub_offline():
                # Fail at once: the hub client would otherwise retry for about half a minute.
                raise CheckpointResolutionError(
                    f"cannot list the revisions of {model_id!r}: HF_HUB_OFFLINE=1. Name the revision "
                    f"explicitly (e.g. {self.family(model_id).example!r}), use a local directory, or unset "
                    "HF_HUB_OFFLINE.")
            try:
                self._cache[model_id] = list(self._list_branches(model_id))
            except CheckpointResolutionError:
                raise
            except Exception as err:  # network, auth, missing repo: say which model and why
                raise CheckpointResolutionError(
                    f"cannot list the revisions of {model_id!r}: {type(err).__name__}: {err}"
                ) from err
        return self._cache[model_id]

    def resolve_step(self, model_id: str, step: int, *, stage: int | None = None,
                     ingredient: int | None = None, family: Family | None = None) -> str:
        """The branch naming `step` in the model's family; a missing step lists the nearest existing ones."""
        family = family or self.family(model_id)
        try:
            family.check_stage(stage, ingredient)
        except ValueError as err:
            raise CheckpointResolutionError(f"{model_id!r}: {err}") from None
        return family.revision_for(step, self.branches(model_id), stage=stage, ingredient=ingredient,
                                   repo=model_id)

    def resolve(self, model_id: str, ref: CheckpointRef, base_dir: str = ".",
                family: Family | None = None) -> tuple[str, str | None]:
        """Return (path_or_id, revision) to pass to `from_pretrained`."""
        if ref.kind == "local":
            path = local_path(ref.path or "", base_dir)
            if not os.path.isdir(path):
                raise CheckpointResolutionError(f"checkpoint directory {ref.path!r} does not exist ({path})")
            return path, None
        if os.path.isdir(os.path.expanduser(model_id)):
            # A local model folder has no branches: only "main" makes sense for it.
            if ref.kind != "main":
                raise CheckpointResolutionError(
                    f"model {model_id!r} is a local directory; checkpoint {ref.label!r} must be a local path"
                )
            return os.path.expanduser(model_id), None
        if ref.kind == "step":
            assert ref.step is not None
            return model_id, self.resolve_step(model_id, ref.step, stage=ref.stage, ingredient=ref.ingredient,
                                               family=family)
        return model_id, ref.revision

    def tokens_seen(self, model_id: str, ref: CheckpointRef, revision: str | None,
                    family: Family | None = None) -> float | None:
        """Billions of tokens seen at a checkpoint, for curves: from its resolved revision's name, else
        from its step where the family's batch is fixed; None where neither says (e.g. `main`)."""
        family = family or self.family(model_id)
        if revision and revision != "main":
            tokens = family.tokens_of(revision)
            if tokens is not None:
                return tokens
        return family.tokens_at(ref.step) if ref.step is not None and ref.kind != "main" else None

