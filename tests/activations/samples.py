"""Short corpus texts shared by the activation tests."""

TEXTS = [
    "Viruses replicate inside host cells and bacteria divide by binary fission. " * 3,
    "Paris is the capital of France and the Nile is the longest river in Africa. " * 3,
    "A compiler translates source code; a sorting algorithm orders a list. " * 3,
]
