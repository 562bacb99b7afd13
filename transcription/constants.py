"""Names and numbers every part of transcription agrees on, defined once."""

# Languages a transcription may ask for ("auto": the model decides per segment).
LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko")
# Decoded audio is always 16 kHz mono float32: the VAD, the engines and the pipeline count samples in it.
SAMPLE_RATE = 16_000
