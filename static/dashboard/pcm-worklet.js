// AudioWorklet: the microphone at the context's rate -> 16 kHz mono PCM16LE frames of 60 ms (960 samples).
class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000; // sampleRate: the AudioContext's (often 48000)
    this.pos = 0; // fractional read position into the input stream
    this.frame = new Int16Array(960);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // Average the input samples that fall into each output sample (a box filter; enough for speech).
    let start = this.pos;
    while (start < input.length) {
      const end = Math.min(input.length, start + this.ratio);
      let sum = 0;
      let n = 0;
      for (let i = Math.floor(start); i < Math.ceil(end) && i < input.length; i++) { sum += input[i]; n++; }
      const v = Math.max(-1, Math.min(1, n ? sum / n : 0));
      this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.filled === this.frame.length) {
        this.port.postMessage(this.frame.buffer.slice(0));
        this.filled = 0;
      }
      start += this.ratio;
    }
    this.pos = start - input.length;
    return true;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
