"""A scripted life over two years, in 20 episodes: Alexandra Chen's jobs, homes and relationships.

Each chapter is the episode's text, its reference time, the extraction the scripted
model answers for it, and how many LLM calls it should cost. She is named by full
name, by nickname ("Lexi", learned in episode 1 as an alias) and by first name
("Alex", ambiguous until the model says so in episode 3, an alias afterwards).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .graph_script import ScriptedModel, entity, fact

ALEX = "Alexandra Chen"


@dataclass
class Chapter:
    text: str
    when: datetime
    entities: list[dict[str, Any]]
    facts: list[dict[str, Any]] = field(default_factory=list)
    calls: int | None = None
    """Expected LLM calls (None: not pinned, the candidates depend on embeddings)."""
    source: str = "message"


def d(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


PERSON = {"type": "Person"}

CHAPTERS: list[Chapter] = [
    Chapter(
        "Hi, I'm Alexandra Chen (friends call me Lexi). "
        "I just started as a data engineer at Acme Corp in Berlin.",
        d("2023-01-10"),
        [entity(ALEX, aliases=["Lexi"], summary="A data engineer."), entity("Acme Corp"), entity("Berlin")],
        [
            fact(ALEX, "WORKS_AT", "Acme Corp", "Alexandra Chen works at Acme Corp as a data engineer."),
            fact(ALEX, "LIVES_IN", "Berlin", "Alexandra Chen lives in Berlin."),
        ],
        calls=1,
    ),
    Chapter(
        "Lexi adopted a cat named Miso.",
        d("2023-02-03"),
        [entity("Lexi"), entity("Miso", summary="Lexi's cat.")],
        [fact("Lexi", "OWNS", "Miso", "Alexandra Chen owns a cat named Miso.")],
        calls=1,
    ),
    Chapter(
        "Alex is dating Sam Rivera, a nurse.",
        d("2023-03-15"),
        [entity("Alex"), entity("Sam Rivera", summary="A nurse.")],
        [fact("Alex", "DATING", "Sam Rivera", "Alexandra Chen is dating Sam Rivera.")],
        calls=2,
    ),
    Chapter(
        "Alex got promoted to senior data engineer at Acme Corp.",
        d("2023-05-01"),
        [entity("Alex"), entity("Acme Corp")],
        [
            fact(
                "Alex",
                "WORKS_AT",
                "Acme Corp",
                "Alexandra Chen works at Acme Corp as a senior data engineer.",
            )
        ],
        calls=2,
    ),
    Chapter(
        "Last week Alexandra moved from Berlin to Lisbon.",
        d("2023-06-20"),
        [entity(ALEX), entity("Lisbon")],
        [fact(ALEX, "LIVES_IN", "Lisbon", "Alexandra Chen lives in Lisbon.", "2023-06-13")],
        calls=2,
    ),
    Chapter(
        "Sam and Alex got engaged!",
        d("2023-09-01"),
        [entity("Sam Rivera"), entity("Alex")],
        [fact("Alex", "ENGAGED_TO", "Sam Rivera", "Alexandra Chen is engaged to Sam Rivera.")],
        calls=2,
    ),
    Chapter(
        "Alexandra left Acme Corp at the end of October.",
        d("2023-11-15"),
        [entity(ALEX), entity("Acme Corp")],
        [fact(ALEX, "WORKS_AT", "Acme Corp", "Alexandra Chen worked at Acme Corp.", None, "2023-10-31")],
        calls=2,
    ),
    Chapter(
        "Alexandra Chen joined Globex as a staff engineer today.",
        d("2023-12-01"),
        [entity(ALEX), entity("Globex")],
        [fact(ALEX, "WORKS_AT", "Globex", "Alexandra Chen works at Globex as a staff engineer.")],
        calls=2,
    ),
    Chapter(
        "Globex is headquartered in Porto.",
        d("2024-01-05"),
        [entity("Globex"), entity("Porto")],
        [fact("Globex", "HEADQUARTERED_IN", "Porto", "Globex is headquartered in Porto.")],
        calls=1,
    ),
    Chapter(
        "Alex and Sam got married on Valentine's Day.",
        d("2024-02-20"),
        [entity("Alex"), entity("Sam Rivera")],
        [fact("Alex", "MARRIED_TO", "Sam Rivera", "Alexandra Chen is married to Sam Rivera.", "2024-02-14")],
        calls=2,
    ),
    Chapter(
        "Lexi says Miso turned three and still hates the vacuum cleaner.",
        d("2024-03-01"),
        [entity("Lexi"), entity("Miso")],
        [],
        calls=1,
    ),
    Chapter(
        "Alexandra and Sam moved to Porto at the start of April.",
        d("2024-04-10"),
        [entity(ALEX), entity("Sam Rivera"), entity("Porto")],
        [
            fact(ALEX, "LIVES_IN", "Porto", "Alexandra Chen lives in Porto.", "2024-04-01"),
            fact("Sam Rivera", "LIVES_IN", "Porto", "Sam Rivera lives in Porto.", "2024-04-01"),
        ],
    ),
    Chapter(
        "Sam Rivera started working at Porto General Hospital.",
        d("2024-05-20"),
        [entity("Sam Rivera"), entity("Porto General Hospital")],
        [
            fact(
                "Sam Rivera",
                "WORKS_AT",
                "Porto General Hospital",
                "Sam Rivera works at Porto General Hospital.",
            )
        ],
    ),
    Chapter(
        '{"employee": "Alexandra Chen", "employer": "Globex", '
        '"title": "Principal Engineer", "since": "2024-06-01"}',
        d("2024-06-01"),
        [entity(ALEX), entity("Globex")],
        [
            fact(
                ALEX,
                "WORKS_AT",
                "Globex",
                "Alexandra Chen works at Globex as a principal engineer.",
                "2024-06-01",
            )
        ],
        calls=2,
        source="json",
    ),
    Chapter(
        "Back in 2019, Alexandra lived in Toronto.",
        d("2024-07-01"),
        [entity(ALEX), entity("Toronto")],
        [fact(ALEX, "LIVES_IN", "Toronto", "Alexandra Chen lived in Toronto.", "2019-01-01")],
        calls=2,
    ),
    Chapter(
        "Alexandra's colleague Priya Nair at Globex recommended a book.",
        d("2024-08-15"),
        [entity(ALEX), entity("Priya Nair"), entity("Globex")],
        [
            fact("Priya Nair", "WORKS_AT", "Globex", "Priya Nair works at Globex."),
            fact(ALEX, "COLLEAGUE_OF", "Priya Nair", "Alexandra Chen is a colleague of Priya Nair."),
        ],
    ),
    Chapter(
        "Sam is no longer at Porto General Hospital: since September Sam works at Clinica Lumen.",
        d("2024-09-30"),
        [entity("Sam Rivera", aliases=["Sam"]), entity("Clinica Lumen"), entity("Porto General Hospital")],
        [fact("Sam Rivera", "WORKS_AT", "Clinica Lumen", "Sam Rivera works at Clinica Lumen.", "2024-09-01")],
        calls=2,
    ),
    Chapter(
        "Lexi adopted a second cat, Tofu.",
        d("2024-10-10"),
        [entity("Lexi"), entity("Tofu")],
        [fact("Lexi", "OWNS", "Tofu", "Alexandra Chen owns a cat named Tofu.")],
        calls=2,
    ),
    Chapter(
        "Alexandra Chen moved back to Lisbon this week.",
        d("2024-11-01"),
        [entity(ALEX), entity("Lisbon")],
        [fact(ALEX, "LIVES_IN", "Lisbon", "Alexandra Chen lives in Lisbon.")],
        calls=2,
    ),
    Chapter(
        "Priya Nair left Globex in December.",
        d("2024-12-20"),
        [entity("Priya Nair"), entity("Globex")],
        [fact("Priya Nair", "WORKS_AT", "Globex", "Priya Nair worked at Globex.", None, "2024-12-01")],
        calls=2,
    ),
]


def script(model: ScriptedModel) -> None:
    for chapter in CHAPTERS:
        model.on(chapter.text, chapter.entities, chapter.facts)
    model.aliases["alex"] = "alexandra chen"
    model.supersedes.update({"ENGAGED_TO": {"DATING"}, "MARRIED_TO": {"ENGAGED_TO", "DATING"}})


#: System time for each chapter: it is learned one day after it happened.
LAG_DAYS = 1
