"""Token rule v1: table-driven cases and properties."""

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.tokens import RULE_VERSION, count, tokenize

CASES = [
    ("", []),
    ("   \n\t", []),
    ("今天天气很好", ["今", "天", "天", "气", "很", "好"]),
    ("Good morning everyone, thank you.", ["Good", "morning", "everyone", "thank", "you"]),
    ("2025年3月5日下午5:30", ["2025", "年", "3", "月", "5", "日", "下", "午", "5:30"]),
    ("价格是1,234.50元，增长了12.5%。", ["价", "格", "是", "1,234.50", "元", "增", "长", "了", "12.5"]),
    ("It's a well-known issue: don't retry more than 3 times.",
     ["It's", "a", "well", "known", "issue", "don't", "retry", "more", "than", "3", "times"]),
    ("请把COVID-19的报告和state-of-the-art的方法对比一下。",
     ["请", "把", "COVID", "19", "的", "报", "告", "和", "state", "of", "the", "art", "的", "方", "法", "对", "比", "一", "下"]),
    ("ＡＰＩ调用次数：１２３４次（全角）", ["API", "调", "用", "次", "数", "1234", "次", "全", "角"]),
    ("Let's schedule the demo on 3月5日 at 5:30 p.m., 好吗？",
     ["Let's", "schedule", "the", "demo", "on", "3", "月", "5", "日", "at", "5:30", "p", "m", "好", "吗"]),
    ("2/3的用户", ["2", "3", "的", "用", "户"]),
    ("50%", ["50"]),
    ("我们用GPU训练了3个小时", ["我", "们", "用", "GPU", "训", "练", "了", "3", "个", "小", "时"]),
    ("こんにちは", ["こ", "ん", "に", "ち", "は"]),
    ("カタカナ", ["カ", "タ", "カ", "ナ"]),
    ("안녕하세요", ["안", "녕", "하", "세", "요"]),
    ("Привет мир", ["Привет", "мир"]),
    ("hello 😀🎉 world!!!", ["hello", "world"]),
    ("<|zh|><|NEUTRAL|><|Speech|><|woitn|>你好", ["你", "好"]),
    ("end. 3.", ["end", "3"]),
    ("3.5.7", ["3.5.7"]),
    ("rock 'n' roll", ["rock", "n", "roll"]),
    ("ＡＢＣ１２３", ["ABC123"]),
    ("x,y 1,a", ["x", "y", "1", "a"]),
    ("〇", ["〇"]),
    ("゛・", []),  # a voiced-sound mark (NFKC: space + combining mark) and a middle dot are free
    ("ラーメン", ["ラ", "ー", "メ", "ン"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "units"), CASES)
def test_rule_v1_table(text, units):
    assert tokenize(text) == units
    assert count(text) == len(units)


def test_rule_version_is_v1():
    assert RULE_VERSION == "v1"


@given(st.text())
def test_count_equals_len_tokenize(text):
    assert count(text) == len(tokenize(text))


@given(st.text())
def test_units_are_nonempty_and_free_of_whitespace(text):
    for unit in tokenize(text):
        assert unit and not any(ch.isspace() for ch in unit)


@given(st.text(alphabet=st.characters(categories=["P", "S", "Z", "Cc"])))
def test_punctuation_symbols_and_space_are_free(text):
    # NFKC comes first: a symbol such as "⒜" is "(a)" after it, which has a letter.
    assume(not any(unicodedata.category(ch)[0] in "LN" for ch in unicodedata.normalize("NFKC", text)))
    assert count(text) == 0


@given(st.text(), st.text())
def test_separated_texts_add_up(a, b):
    # A space never creates tokens (it may only end a tag or a word).
    assert count(a + " " + b) <= count(a) + count(b)


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)))
def test_each_han_character_is_one_token(text):
    assert count(text) == len(text)


def test_every_code_point_alone_bills_only_letters_and_numbers():
    """Exhaustive over Unicode: a billed unit always holds a letter or number after NFKC."""
    for cp in range(0x110000):
        ch = chr(cp)
        for unit in tokenize(ch):
            assert any(unicodedata.category(c)[0] in "LN" for c in unit), hex(cp)
