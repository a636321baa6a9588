"""Rule-based perturbation ops: deterministic per (seed, text key), parameters checked, edits as documented."""

from __future__ import annotations

import re

import pytest

from seal.annotate.perturb import rules
from seal.annotate.perturb.rules import OPS, RuleChain, parse_op
from seal.errors import SealError

TEXT = (
    "Well, I don't think that's a good idea. You can't do it safely. It's 3.5 miles away! "
    "Is it a quick and easy trip? Paris is nice. I like Paris."
)


def apply(method: str, text: str = TEXT, key: str = "0|pair|chosen") -> str:
    return RuleChain.parse(method).apply(text, key)


@pytest.mark.parametrize("method", [m for m in OPS if m != "synonyms"])
def test_every_op_is_deterministic_per_key_and_seeded(method):
    chain = RuleChain.parse(method)
    assert chain.apply(TEXT, "1|p|chosen") == chain.apply(TEXT, "1|p|chosen")
    assert isinstance(chain.apply("", "k"), str)


def test_typos_touch_letters_only_at_about_the_rate():
    out = apply("typos:rate=0.05")
    assert out != TEXT
    assert re.sub(r"[A-Za-z]", "", out) == re.sub(r"[A-Za-z]", "", TEXT)  # digits, spaces, punctuation intact
    assert abs(len(out) - len(TEXT)) <= 10
    seeds = {apply("typos:rate=0.05", key=f"{s}|p|chosen") for s in range(5)}
    assert len(seeds) == 5  # the seed (in the key) changes the edits
    assert apply("typos:rate=0,min=0") == TEXT
    assert apply("typos:rate=0,min=1", text="Yes.") != "Yes."  # at least `min` edits


def test_case_modes():
    assert apply("case:mode=lower") == TEXT.lower()
    assert apply("case:mode=upper") == TEXT.upper()
    assert apply("case:mode=title").startswith("Well, I Don't Think That's A Good Idea.")
    shouted = apply("case:mode=random,rate=0.5")
    assert shouted.lower() == TEXT.lower() and shouted != TEXT


def test_punctuation_modes_keep_numbers():
    exclaimed = apply("punctuation")
    assert exclaimed.count("!") == 5 and "3.5" in exclaimed and "?" in exclaimed
    assert apply("punctuation", text="ok") == "ok!"  # a text without '!' gets one
    stripped = apply("punctuation:mode=strip")
    assert not re.search(r"[,;:!?]|\.(?!5)", stripped) and "3.5" in stripped
    assert "idea.." in apply("punctuation:mode=double")


def test_whitespace_modes():
    extra = apply("whitespace:rate=0.3")
    assert "  " in extra and extra.replace("  ", " ") == TEXT
    assert "\n" in apply("whitespace:mode=newlines,rate=1")
    assert apply("whitespace:mode=collapse", text="a  b\n\nc ") == "a b c"


def test_contractions_expand_and_contract():
    assert apply("contractions") == (
        "Well, I do not think that is a good idea. You cannot do it safely. It is 3.5 miles away! "
        "Is it a quick and easy trip? Paris is nice. I like Paris."
    )
    assert apply("contractions:mode=expand", text="DON'T. I'm sure it’s fine.") == "DO NOT. I am sure it is fine."
    contracted = apply("contractions:mode=contract", text="I am sure it is not. I will not, they have not. Do not.")
    assert contracted == "I'm sure it isn't. I won't, they haven't. Don't."


def test_filler_keeps_proper_nouns_and_the_pronoun_i():
    out = apply("filler:rate=1")
    assert out.count(", ") > TEXT.count(", ")
    assert re.search(r"(Well|Honestly|Basically|To be honest|You know|I mean|Actually), Paris is nice", out)
    assert re.search(r", I like Paris", out)
    assert re.search(r", you can't do it", out)  # a common word is lowercased after the filler
    assert apply("filler:phrases=Look,rate=1", text="Fine. Go.") == "Look, fine. Look, go."


def test_chains_apply_in_order_and_name_themselves():
    chain = RuleChain.parse("contractions+case:mode=upper")
    assert chain.apply("I'm here.", "k") == "I AM HERE."
    assert chain.default_name() == "contractions_case"
    assert chain.canonical() == "contractions:mode=expand,rate=1.0+case:min=1,mode=upper,rate=0.3"
    assert chain.params()[1] == {"op": "case", "params": {"min": 1, "mode": "upper", "rate": 0.3}}


def test_parameters_are_checked():
    assert parse_op("typos:rate=0.1,min=2") == ("typos", {"rate": 0.1, "min": 2})
    for method, fragment in [
        ("nope", "unknown perturbation op"),
        ("typos:speed=1", "no parameter speed"),
        ("typos:rate=fast", "must be a number"),
        ("typos:rate=2", "must be <= 1"),
        ("case:mode=sideways", "must be one of"),
        ("typos:rate", "KEY=VALUE"),
    ]:
        with pytest.raises(SealError, match=fragment):
            RuleChain.parse(method)
    with pytest.raises(SealError, match="cannot apply to the chain"):
        RuleChain.parse("typos+case", {"rate": 0.1})
    assert RuleChain.parse("typos", {"rate": 0.2}).canonical() == "typos:min=1,rate=0.2"


def test_synonyms_need_wordnet_and_say_how_to_get_it(monkeypatch):
    monkeypatch.setattr(rules, "wordnet_dir", lambda: None)
    rules.load_wordnet.cache_clear()
    try:
        with pytest.raises(SealError, match="apt-get install --no-install-recommends wordnet-base"):
            RuleChain.parse("synonyms")
    finally:
        rules.load_wordnet.cache_clear()


@pytest.mark.skipif(rules.wordnet_dir() is None, reason="WordNet is not installed (apt-get install wordnet-base)")
def test_synonyms_replace_adjectives_with_wordnet_synonyms():
    wn = rules.load_wordnet()
    assert "speedy" in wn.synonyms("quick", "adj")
    out = apply("synonyms:rate=1")
    changed = [(a, b) for a, b in zip(TEXT.split(), out.split(), strict=True) if a != b]
    assert changed, out
    for old, new in changed:
        word = re.sub(r"\W", "", old).lower()
        assert re.sub(r"\W", "", new).lower() in {
            s.lower() for s in wn.synonyms(word, "adj") + wn.synonyms(word, "adv")
        }
    assert apply("synonyms:rate=1") == out
