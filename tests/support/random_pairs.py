"""Random pre-tokenised prompt pairs for the gemma2-tiny fixture, shared by the Python tests."""
import json
import random


def write_random_pairs(path, n, case, seed=0):
    """n pairs of 6..11 tokens over the fixture's 300-token vocabulary (id 2 first, ids 4..299 after);
    the patch changes 1-2 tokens after the first; cases are "<case>-<i>"."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            length = rng.randint(6, 11)
            clean = [2] + [rng.randrange(4, 300) for _ in range(length - 1)]
            patch = list(clean)
            for pos in rng.sample(range(1, length), rng.randint(1, 2)):
                patch[pos] = rng.randrange(4, 300)
            a, b = rng.sample(range(4, 300), 2)
            f.write(json.dumps({"clean_ids": clean, "patch_ids": patch, "clean_answer_id": a,
                                "patch_answer_id": b, "case": "%s-%d" % (case, i)}) + "\n")
