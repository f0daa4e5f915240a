"""A seeded synthetic RAG-QA corpus: documentation of the fictional "Skyloom" platform.

Each document describes one made-up component with a random subset of attributes (owner team,
region, protocol, port, timeout, replicas, retention, mutual TLS, autoscaling, backups). Its
questions are factual, numeric and yes/no about attributes the document states, whose answers
are in the text, and unanswerable ones about attributes it does not state, answered with the
canonical refusal. The same seed gives the same corpus, byte for byte.

A little noise is added on purpose (`noise` > 0), so data preparation has real work: exact
duplicate rows, near duplicates (a reworded copy of a question), and text that only
normalisation makes equal (non-breaking and repeated spaces, full-width digits).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mlops.datasets.ragqa import REFUSAL, UNANSWERABLE

SYLLABLES = (
    "ar", "bel", "cor", "dax", "el", "fen", "gal", "hol", "ist", "jun", "kel", "lor", "mar", "nev",
    "or", "pel", "quin", "ros", "sal", "tor", "ul", "var", "wen", "xan", "yor", "zel",
)  # fmt: skip
KINDS = (
    "gateway",
    "scheduler",
    "queue",
    "cache",
    "ledger",
    "registry",
    "vault",
    "indexer",
    "broker",
    "router",
)
TEAMS = ("Storage", "Networking", "Identity", "Observability", "Payments", "Search", "Messaging", "Compute")
REGIONS = ("north-1", "north-2", "east-1", "east-3", "south-2", "west-1", "west-4", "central-5")
PROTOCOLS = ("gRPC", "HTTP/2", "AMQP", "WebSocket", "plain TCP", "QUIC")


@dataclass(frozen=True)
class Attribute:
    """One fact a document may state, how it is stated, and how it is asked about."""

    name: str
    question_type: str
    sentence: str  # uses {name}, {value}
    questions: tuple[str, ...]
    answer: str


def _value(attribute: str, rng: random.Random) -> Any:
    choices: dict[str, Any] = {
        "team": lambda: rng.choice(TEAMS),
        "region": lambda: rng.choice(REGIONS),
        "protocol": lambda: rng.choice(PROTOCOLS),
        "port": lambda: (
            rng.choice((80, 443, 5000, 6379, 7000, 8080, 8443, 9000, 9092, 9443)) + rng.randrange(0, 7)
        ),
        "timeout": lambda: rng.choice((5, 10, 15, 20, 30, 45, 60, 90, 120)),
        "replicas": lambda: rng.randrange(2, 25),
        "retention": lambda: rng.choice((3, 7, 14, 30, 60, 90, 365)),
        "tls": lambda: rng.random() < 0.5,
        "autoscaling": lambda: rng.random() < 0.5,
        "backups": lambda: rng.random() < 0.5,
    }
    return choices[attribute]()


FACTS = {
    "team": Attribute(
        "team",
        "factual",
        "{name} is maintained by the {value} team.",
        ("Which team maintains {name}?", "Who maintains {name}?"),
        "{name} is maintained by the {value} team.",
    ),
    "region": Attribute(
        "region",
        "factual",
        "It runs in the {value} region.",
        ("In which region does {name} run?", "Where does {name} run?"),
        "{name} runs in the {value} region.",
    ),
    "protocol": Attribute(
        "protocol",
        "factual",
        "Clients talk to it over {value}.",
        ("Which protocol do clients use to talk to {name}?", "How do clients talk to {name}?"),
        "Clients talk to {name} over {value}.",
    ),
    "port": Attribute(
        "port",
        "numeric",
        "It listens on port {value}.",
        ("On which port does {name} listen?", "What port does {name} listen on?"),
        "{name} listens on port {value}.",
    ),
    "timeout": Attribute(
        "timeout",
        "numeric",
        "Requests to it time out after {value} seconds.",
        ("After how many seconds do requests to {name} time out?", "What is the request timeout of {name}?"),
        "Requests to {name} time out after {value} seconds.",
    ),
    "replicas": Attribute(
        "replicas",
        "numeric",
        "It scales to at most {value} replicas.",
        ("How many replicas can {name} scale to?", "What is the maximum number of replicas of {name}?"),
        "{name} scales to at most {value} replicas.",
    ),
    "retention": Attribute(
        "retention",
        "numeric",
        "It keeps its data for {value} days.",
        ("For how many days does {name} keep its data?", "How long does {name} keep its data?"),
        "{name} keeps its data for {value} days.",
    ),
    "tls": Attribute(
        "tls",
        "yes_no",
        "It {value} mutual TLS.",
        ("Does {name} support mutual TLS?", "Can {name} use mutual TLS?"),
        "",  # yes/no answers are built by _answer
    ),
    "autoscaling": Attribute(
        "autoscaling",
        "yes_no",
        "Autoscaling is {value} for it.",
        ("Is autoscaling enabled for {name}?", "Does {name} autoscale?"),
        "",
    ),
    "backups": Attribute(
        "backups",
        "yes_no",
        "Nightly backups are {value}.",
        ("Does {name} take nightly backups?", "Are nightly backups enabled for {name}?"),
        "",
    ),
}
# Asked only as unanswerable: no document ever states these.
NEVER_STATED = (
    "What is the monthly cost of running {name}?",
    "Who wrote the first version of {name}?",
    "How many users does {name} serve?",
)


def _stated(attribute: str, value: Any) -> str:
    """The value as the document's sentence states it."""
    if attribute == "tls":
        return "supports" if value else "does not support"
    if attribute in ("autoscaling", "backups"):
        return "enabled" if value else "disabled"
    return str(value)


def _answer(fact: Attribute, name: str, value: Any) -> str:
    if fact.name == "tls":
        return f"Yes, {name} supports mutual TLS." if value else f"No, {name} does not support mutual TLS."
    if fact.name == "autoscaling":
        return (
            f"Yes, autoscaling is enabled for {name}."
            if value
            else f"No, autoscaling is disabled for {name}."
        )
    if fact.name == "backups":
        return (
            f"Yes, {name} takes nightly backups." if value else f"No, {name} does not take nightly backups."
        )
    return fact.answer.format(name=name, value=value)


def _component_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
        name = f"{stem} {rng.choice(KINDS)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _noisy(text: str, rng: random.Random) -> str:
    """The same text after a careless copy-paste: normalisation makes it equal again."""
    text = text.replace(" ", "\u00a0", 1).replace(". ", ".  ", 1)
    full_width = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    return text.translate(full_width) if rng.random() < 0.5 else text + " "


def _reworded(question: str) -> str:
    """A near duplicate: the same question with one small word changed."""
    for old, new in ((" does ", " does the "), (" the ", " "), ("?", " ?")):
        if old in question:
            return question.replace(old, new, 1)
    return question + " please"


def generate(documents: int = 120, seed: int = 42, noise: float = 0.05) -> list[dict[str, Any]]:
    """The corpus as JSON-ready records (the schema of mlops.datasets.ragqa), in a seeded order."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for doc_index, name in enumerate(_component_names(rng, documents)):
        kind = name.split()[-1]
        stated = rng.sample(sorted(FACTS), rng.randint(4, 7))
        values = {a: _value(a, rng) for a in stated}
        intro = f"{name} is the {kind} service of the Skyloom platform."
        sentences = [FACTS[a].sentence.format(name=name, value=_stated(a, values[a])) for a in stated]
        context = " ".join([intro, *sentences])
        document_id = f"doc-{doc_index:04d}"

        def row(
            question: str,
            answer: str,
            question_type: str,
            document_id: str = document_id,
            context: str = context,
        ) -> dict[str, Any]:
            return {
                "context": context,
                "question": question,
                "reference_answer": answer,
                "metadata": {"question_type": question_type, "document_id": document_id},
            }

        asked = rng.sample(stated, min(len(stated), rng.randint(3, 4)))
        for attribute in asked:
            fact = FACTS[attribute]
            question = rng.choice(fact.questions).format(name=name)
            rows.append(row(question, _answer(fact, name, values[attribute]), fact.question_type))
        missing = sorted(set(FACTS) - set(stated))
        unanswerable = [rng.choice(FACTS[a].questions).format(name=name) for a in rng.sample(missing, 1)]
        if rng.random() < 0.4:
            unanswerable.append(rng.choice(NEVER_STATED).format(name=name))
        for question in unanswerable:
            rows.append(row(question, REFUSAL, UNANSWERABLE))
    extra: list[dict[str, Any]] = []
    for source in rows:
        draw = rng.random()
        if draw < noise / 3:
            extra.append(dict(source))  # exact duplicate
        elif draw < 2 * noise / 3:
            extra.append({**source, "question": _reworded(source["question"])})  # near duplicate
        elif draw < noise:
            extra.append(
                {
                    **source,
                    "question": _noisy(source["question"], rng),
                    "context": _noisy(source["context"], rng),
                }
            )
    for item in extra:
        rows.insert(rng.randrange(len(rows) + 1), item)
    return rows
