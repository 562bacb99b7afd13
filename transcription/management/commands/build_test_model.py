"""Write a tiny random FunASR model (SenseVoice, Paraformer, SeACo-Paraformer, CAM++) for tests and benchmarks."""

from django.core.management.base import BaseCommand

from transcription.testmodels import KINDS, build_test_model


class Command(BaseCommand):
    help = "Write a tiny randomly initialised model of a real FunASR architecture into DIR (deterministic per seed)."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--kind", choices=KINDS, default="sensevoice")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--full",
            action="store_true",
            help="SenseVoice only: the real SenseVoiceSmall dimensions (about 234 M parameters, 0.9 GB) for benches.",
        )

    def handle(self, *args, directory, kind, seed, full, **options):
        out = build_test_model(directory, kind=kind, seed=seed, full=full)
        self.stdout.write(f"Wrote a {'full-size' if full else 'tiny'} {kind} model to {out}")
