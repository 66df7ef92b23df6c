"""Comparing two `sfc run` results files, for the Python tests."""
import h5py
import numpy as np


def datasets(path):
    """Every dataset of a results file except /timing (it measures the run, not the science), and the
    root attributes that fix its shape."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("timing"):
                out[name] = obj[()]
        f.visititems(visit)
        attrs = {k: f.attrs[k] for k in ("n_pairs", "n_layer", "n_tokens", "schema_version")}
    return out, attrs


def assert_same_results(test, reference, other, rtol=1e-6):
    """Through unittest.TestCase `test`: the same datasets, shapes and NaNs; floats within rtol of each
    dataset's largest magnitude, everything else equal."""
    ref, ref_attrs = datasets(reference)
    got, got_attrs = datasets(other)
    test.assertEqual(ref_attrs, got_attrs)
    test.assertEqual(sorted(ref), sorted(got))
    test.assertTrue(any(n.startswith("error/") for n in ref), sorted(ref))
    for name in ref:
        a, b = ref[name], got[name]
        test.assertEqual(a.shape, b.shape, name)
        if a.dtype.kind == "f":
            test.assertTrue(np.array_equal(np.isnan(a), np.isnan(b)), name + ": NaN pattern differs")
            finite = ~np.isnan(a)
            scale = max(np.abs(a[finite]).max(initial=0.0), 1e-30)
            err = np.abs(a[finite] - b[finite]).max(initial=0.0)
            test.assertLessEqual(err, rtol * scale, "%s: max |diff| %g > %g" % (name, err, rtol * scale))
        else:
            test.assertTrue(np.array_equal(a, b), name)
