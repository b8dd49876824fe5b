"""core.prune.plan: what a prune may remove from a node, and in what order (issue 19, section 3).

The property: whatever the node holds and whatever the brain asks to keep, a plan never holds
an image a keep entry names (in any of the spellings a reference takes), nor one a container
left after the plan uses, nor a running container, nor a container of a wanted task.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_medic.core.model import EngineContainer, Image
from swarm_medic.core.prune import (
    STOPPED,
    Keep,
    digest,
    largest,
    name_tag,
    plan,
    refs_to_remove,
    unbounded_logs,
)

NAMES = ["app", "nginx", "library/redis", "reg.local:5000/team/api", "ghcr.io/o/tool"]
TAGS = ["", "1", "1.2", "latest", "Prod"]
DIGESTS = ["sha256:" + c * 64 for c in "abcdef"]
STATES = ["created", "running", "paused", "restarting", "removing", "exited", "dead"]
IDS = ["sha256:" + c * 64 for c in "0123456789"]


def spellings(name: str, tag: str, dig: str) -> list[str]:
    """The ways a service spec, a tag or a digest may write the same reference."""
    base = f"{name}:{tag}" if tag else name
    out = [base, base.upper() if "/" not in name else base]
    host = name.partition("/")[0]
    if "." not in host and ":" not in host:
        hub = name if "/" in name else f"library/{name}"
        out += [
            f"docker.io/{hub}" + (f":{tag}" if tag else ""),
            f"docker.io/{name}:{tag or 'latest'}",
        ]
    if dig:
        out += [f"{r}@{dig}" for r in list(out)]
    return out


@st.composite
def references(draw: st.DrawFn) -> str:
    name, tag = draw(st.sampled_from(NAMES)), draw(st.sampled_from(TAGS))
    dig = draw(st.sampled_from(["", *DIGESTS]))
    return draw(st.sampled_from(spellings(name, tag, dig)))


@st.composite
def images(draw: st.DrawFn) -> list[Image]:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=8))
    out = []
    for i in ids:
        tags = draw(
            st.lists(
                st.builds(
                    lambda n, t: f"{n}:{t or 'latest'}",
                    st.sampled_from(NAMES),
                    st.sampled_from(TAGS),
                ),
                max_size=3,
                unique=True,
            )
        )
        digests = draw(
            st.lists(
                st.builds(
                    lambda n, d: f"{n}@{d}", st.sampled_from(NAMES), st.sampled_from(DIGESTS)
                ),
                max_size=2,
            )
        )
        out.append(
            Image(
                id=i,
                tags=tuple(tags),
                digests=tuple(digests),
                created=draw(st.floats(0, 2e9)),
                size=draw(st.integers(0, 1 << 40)),
                containers=draw(st.sampled_from([-1, 0, 1, 2])),
            )
        )
    return out


@st.composite
def containers(draw: st.DrawFn) -> list[EngineContainer]:
    n = draw(st.integers(0, 10))
    return [
        EngineContainer(
            id=f"c{k}",
            state=draw(st.sampled_from(STATES)),
            image_id=draw(st.sampled_from(["", *IDS])),
            task_id=draw(st.sampled_from(["", "t1", "t2", "t3"])),
        )
        for k in range(n)
    ]


def named_by(ref: str, image: Image) -> bool:
    """An independent reading of "this keep entry names this image": by tag, digest or ID."""
    r = ref.lower()
    name, _, dig = r.partition("@")
    if dig and any(d.lower().endswith("@" + dig) for d in image.digests):
        return True
    if (
        image.id.lower().removeprefix("sha256:").startswith(r.removeprefix("sha256:"))
        and len(r.removeprefix("sha256:")) >= 12
    ):
        return True
    forms = set()
    for t in image.tags:
        tag_name, _, tag = t.rpartition(":")
        for spelled in spellings(tag_name, tag, ""):
            forms.add(spelled.lower())
            if spelled.endswith(":latest"):
                forms.add(spelled.lower().removesuffix(":latest"))
    return name in forms


@settings(max_examples=300)  # each example draws a whole node: the profile's 1000 take 20 s
@given(
    images(),
    containers(),
    st.lists(references(), max_size=6),
    st.sets(st.sampled_from(["t1", "t2", "t3"])),
)
def test_a_plan_never_removes_what_is_kept_used_running_or_wanted(
    imgs: list[Image], ctrs: list[EngineContainer], keep: list[str], wanted: set[str]
) -> None:
    p = plan(imgs, ctrs, keep, wanted)
    removed = {c.id for c in p.containers}
    for c in p.containers:
        assert c.state in STOPPED, c
        assert not c.task_id or (c.task_id not in wanted and c.state != "created"), c
    left = [c for c in ctrs if c.id not in removed]
    assert all(
        c.state not in STOPPED or (c.task_id and (c.task_id in wanted or c.state == "created"))
        for c in left
    )
    for image in (*p.dangling, *p.images):
        assert not any(named_by(k, image) for k in keep), (image, keep)
        assert not any(c.image_id == image.id for c in left), image
    # dangling first, then tagged: each oldest first, and nothing twice
    assert all(not [t for t in i.tags if t != "<none>:<none>"] for i in p.dangling)
    assert all(i.tags for i in p.images)
    assert [i.created for i in p.images] == sorted(i.created for i in p.images)
    assert len({i.id for i in (*p.dangling, *p.images)}) == len(p.dangling) + len(p.images)


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("nginx", "nginx:latest"),
        ("nginx:1.27@sha256:ab", "nginx:1.27"),
        ("docker.io/library/nginx:1.27", "nginx:1.27"),
        ("docker.io/team/app", "team/app:latest"),
        ("library/redis:7", "redis:7"),
        ("reg.local:5000/app", "reg.local:5000/app:latest"),
        ("reg.local:5000/app:2", "reg.local:5000/app:2"),
        ("App:Prod", "app:prod"),
        ("", ""),
    ],
)
def test_references_are_compared_by_name_and_tag(ref: str, want: str) -> None:
    assert name_tag(ref) == want


def test_a_digest_or_an_id_keeps_an_image_whatever_its_name() -> None:
    pinned = Image("sha256:" + "a" * 64, (), ("other/name@sha256:" + "b" * 64,))
    assert Keep.of(["app:1@sha256:" + "b" * 64]).holds(pinned)
    assert Keep.of(["a" * 12]).holds(pinned)
    assert Keep.of(["sha256:" + "a" * 64]).holds(pinned)
    assert not Keep.of(["a" * 11, "app:1"]).holds(pinned)
    assert digest("app@sha256:" + "B" * 64) == "sha256:" + "b" * 64


def test_the_steps_and_their_order() -> None:
    old, new, kept, used, dangling = (
        Image("sha256:old", ("app:1",), created=100, size=5),
        Image("sha256:new", ("app:2",), created=200, size=7),
        Image("sha256:kept", ("app:3",), created=50),
        Image("sha256:used", ("app:4",), created=10),
        Image("sha256:dang", ("<none>:<none>",), created=300, size=1),
    )
    ctrs = [
        EngineContainer("gone", "exited", "sha256:old", "t-old"),
        EngineContainer("wanted", "exited", "sha256:used", "t-wanted"),
        EngineContainer("up", "running", "sha256:kept", "t-up"),
        EngineContainer("mine", "created", "", ""),
        EngineContainer("starting", "created", "sha256:new", "t-new"),  # a task made since
    ]
    p = plan([new, old, kept, used, dangling], ctrs, ["docker.io/library/app:3"], {"t-wanted"})
    assert [c.id for c in p.containers] == ["gone", "mine"]
    assert p.dangling == (dangling,)
    assert p.images == (old,)  # `old` is free once `gone` is removed; `new` starts a task
    assert p.bytes_at_most == 6
    assert "2 stopped container(s), 1 dangling image(s), 1 unused image(s)" in p.describe()


def test_an_image_the_engine_counts_containers_for_is_kept_unless_ours_used_it() -> None:
    theirs = Image("sha256:x", ("x:1",), containers=1)
    ours = Image("sha256:y", ("y:1",), containers=1)
    p = plan([theirs, ours], [EngineContainer("c", "dead", "sha256:y")], [], [])
    assert p.images == (ours,)


def test_an_image_goes_by_its_tags_one_by_one_or_by_its_id() -> None:
    assert refs_to_remove(Image("sha256:a", ("a:1", "b:2"))) == ("a:1", "b:2")
    assert refs_to_remove(Image("sha256:a", ("<none>:<none>",))) == ("sha256:a",)


def test_logs_are_only_reported() -> None:
    ctrs = [
        EngineContainer("a", "running", log_driver="json-file"),
        EngineContainer("b", "running", log_driver="json-file", log_max_size="10m"),
        EngineContainer("c", "running", log_driver="local"),
    ]
    assert [c.id for c in unbounded_logs(ctrs)] == ["a"]
    sizes = [(f"/l/{i}", i) for i in range(8)]
    assert [f.bytes for f in largest(sizes)] == [7, 6, 5, 4, 3]
