"""Two-voice audio for the speaker tests and benches: espeak-ng voices, turns with their ground truth.

scripts/train_speaker_model.py trains the fixture CAM++ on TRAIN_VOICES x TRAIN_SENTENCES; the tests speak
other voices (TEST_VOICES: no (voice, pitch) pair is in the training set) and other sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from tests.audio_samples import REPO, SR, silence, speak

SPEAKER_MODEL = REPO / "tests" / "fixtures" / "models" / "campplus_trained"


@dataclass(frozen=True)
class Voice:
    voice: str  # espeak-ng voice (with +variant)
    pitch: int  # espeak-ng -p


# The test speakers. easy: a male and a female voice; hard: two male voices of the same pitch (only the accent differs).
TEST_VOICES = {
    "male_us": Voice("en-us", 45),
    "female_gb": Voice("en-gb+f3", 75),
    "male_us50": Voice("en-us", 50),
    "male_gb50": Voice("en-gb", 50),
}
EASY_PAIR = ("male_us", "female_gb")
HARD_PAIR = ("male_us50", "male_gb50")

# Training voices: none of them is a test voice (a different pitch or variant of the same accents, and others).
TRAIN_VOICES = (
    Voice("en-us", 35),
    Voice("en-us", 62),
    Voice("en-gb", 38),
    Voice("en-gb", 64),
    Voice("en-us+m1", 48),
    Voice("en-us+m3", 55),
    Voice("en-gb+m2", 45),
    Voice("en-gb+m4", 52),
    Voice("en-gb+f3", 62),
    Voice("en-gb+f3", 88),
    Voice("en-us+f2", 70),
    Voice("en-us+f4", 80),
    Voice("en-gb-x-rp", 50),
    Voice("en-029", 50),
    Voice("en-gb-scotland", 48),
    Voice("en-us+f1", 60),
)

TRAIN_SENTENCES = (
    "the river was cold and the boats stayed near the shore all winter",
    "please bring three apples and a loaf of bread from the market",
    "our meeting starts at nine so do not be late tomorrow morning",
    "she painted the small kitchen a bright shade of yellow",
    "numbers like forty two and seventeen are easy to remember",
    "the train to the airport leaves every twenty minutes",
    "he forgot his umbrella and walked home in the heavy rain",
    "a good teacher listens carefully before answering a question",
    "the library closes early on sundays during the summer",
    "we measured the length of the garden with a long rope",
    "my grandmother grows tomatoes peppers and beans every year",
    "turn left at the bakery and the post office is on your right",
)

# The turns of the two-voice clips (never trained on).
TURN_SENTENCES = (
    "good morning and thank you all for joining this call today",
    "thanks, I am glad we could finally find a time that works",
    "let us start with the budget for the next quarter",
    "I think we should spend more on testing and less on travel",
    "that sounds reasonable, can you send me the numbers by friday",
    "of course, I will write them up and share them this afternoon",
)
ENROLL_SENTENCES = (
    "this is my voice sample for the enrollment of my voiceprint",
    "I read this second sentence so the system can learn how I sound",
)
HELD_OUT_SENTENCES = (
    "where did you park the blue car last night",
    "the weather report says it will snow on tuesday",
    "could you please close the window behind you",
    "my favourite song is playing on the radio again",
    "we need six more chairs for the guests in the hall",
    "the coffee machine on the second floor is broken",
)


@cache
def say(text: str, voice: Voice) -> np.ndarray:
    """One sentence in one voice (cached: the tests speak the same sentences several times)."""
    return speak(text, voice=f"{voice.voice}", speed=160, pitch=voice.pitch)


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str  # the TEST_VOICES key


def conversation(pair: tuple[str, str], sentences=TURN_SENTENCES, *, gap_s: float = 1.0):
    """Alternating turns of the two voices with `gap_s` of silence between them: (samples, [Turn])."""
    parts, turns, pos = [silence(0.5)], [], 0.5
    for i, text in enumerate(sentences):
        who = pair[i % 2]
        clip = say(text, TEST_VOICES[who])
        parts += [clip, silence(gap_s)]
        turns.append(Turn(round(pos, 3), round(pos + clip.shape[0] / SR, 3), who))
        pos += clip.shape[0] / SR + gap_s
    return np.concatenate(parts).astype(np.float32), turns


def write_fixture_clips(directory: Path) -> list[Path]:
    """The easy and hard clips as WAV files with their turns (.turns: start end speaker), for manual runs."""
    from tests.audio_samples import write_wav

    out = []
    for name, pair in (("two_voice_easy", EASY_PAIR), ("two_voice_hard", HARD_PAIR)):
        samples, turns = conversation(pair)
        out.append(write_wav(directory / f"{name}.wav", samples))
        (directory / f"{name}.turns").write_text("".join(f"{t.start} {t.end} {t.speaker}\n" for t in turns))
    return out
