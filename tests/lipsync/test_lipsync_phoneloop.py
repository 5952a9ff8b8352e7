"""The posterior phone loop's parts, each against a truth it did not write: our features fed to
PocketSphinx's own decoder give the phones its own front end gives; forward-backward equals
brute-force enumeration of every path; the frame decision sums posteriors by mouth class.
(Its accuracy on continuous speech is in test_lipsync_analysis.py, beside the baselines.)"""

import itertools

import numpy as np
import pytest

from lipsync.phoneloop import LoopParams, decide, posteriors, posteriors3, to_segments


def _decode(d, feed) -> list[str]:
    d.start_utt()
    feed()
    d.end_utt()
    return [s.word for s in d.seg()]


def test_features_are_pocketsphinx_front_end(speech):
    """PocketSphinx decodes our cepstra (``process_cep``) into the same phone string as its own
    front end makes from the audio (``process_raw``): the model is scored on the features it
    was trained on. Leaving out the lifter, the noise removal or the int16 scale changes it."""
    from lipsync.audio import Audio
    from lipsync.phonemes import _decodable_pcm, _decoder
    from lipsync.sphinxmodel import cepstra

    samples, _ = speech
    d = _decoder("phone")
    pcm = _decodable_pcm(Audio(samples, 16000))
    x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    theirs = _decode(d, lambda: d.process_raw(pcm, full_utt=True))
    ours = _decode(d, lambda: d.process_cep(cepstra(x).astype(np.float32).tobytes(), full_utt=True))
    assert len(theirs) > 20
    assert ours == theirs
    lifterless = cepstra(x) / (1 + 11 * np.sin(np.arange(13) * np.pi / 22))
    assert _decode(d, lambda: d.process_cep(lifterless.astype(np.float32).tobytes(), full_utt=True)) != theirs


def test_model_is_read_whole():
    """Every CI phone of the dictionary has three senones whose mixture weights sum to one
    (8-bit quantised), and left-to-right transition rows that sum to one."""
    from lipsync.sphinxmodel import load_model

    m = load_model()
    assert {"AA", "B", "F", "M", "P", "UW", "V", "SIL"} <= set(m.phones) and len(m.phones) == 42
    w = np.exp(m._mixw).sum(axis=3)
    assert np.allclose(w, 1.0, atol=0.08), w.min()
    assert np.allclose(m.tmat.sum(axis=2), 1.0) and np.all(np.tril(m.tmat[:, :, :3], -1) == 0)


def _brute_force(loglik, tmat, bigram, params, start):
    """Phone posteriors by summing over every state path (tiny cases only)."""
    t_len, n, _ = loglik.shape
    from lipsync.phoneloop import _transitions

    a = _transitions(tmat, bigram, params)
    b = np.exp(params.acoustic_scale * loglik.reshape(t_len, 3 * n))
    post = np.zeros((t_len, n))
    for path in itertools.product(range(3 * n), repeat=t_len - 1):
        states = (3 * start,) + path
        p = b[0, states[0]]
        for t in range(1, t_len):
            p *= a[states[t - 1], states[t]] * b[t, states[t]]
        for t, s in enumerate(states):
            post[t, s // 3] += p
    return post / post.sum(axis=1, keepdims=True)


def test_forward_backward_equals_enumeration():
    rng = np.random.default_rng(3)
    n, t_len = 2, 5
    tmat = np.zeros((n, 3, 4))
    for p in range(n):
        for s in range(3):
            stay = rng.uniform(0.3, 0.8)
            tmat[p, s, s], tmat[p, s, s + 1] = stay, 1 - stay
    bigram = np.array([[0.3, 0.7], [0.6, 0.4]])
    loglik = rng.normal(0, 3, (t_len, n, 3))
    params = LoopParams(acoustic_scale=0.5, insertion=0.7, lm_weight=1.0)
    want = _brute_force(loglik, tmat, bigram, params, start=0)
    assert np.allclose(posteriors(loglik, tmat, bigram, params, 0), want, atol=1e-9)
    # the trigram loop with P(c | a b) = P(c | b) is the bigram loop
    tri = np.broadcast_to(bigram[None], (n, n, n)).copy()
    assert np.allclose(posteriors3(loglik, tmat, tri, params, 0), want, atol=1e-6)


def test_frame_shows_the_most_probable_class_not_phone():
    """F 0.3 + V 0.3 beat TH 0.4: the mouth is F/V (as F, its likelier phone); a quiet frame is
    silence whatever the model says."""
    phones = ["F", "V", "TH", "AA", "SIL"]
    post = np.array([[0.3, 0.25, 0.45, 0.0, 0.0], [0.0, 0.0, 0.1, 0.9, 0.0], [0.0, 0.0, 0.1, 0.9, 0.0]])
    out = decide(post, phones, np.array([1.0, 1.0, 0.001]), LoopParams(quiet=0.02))
    assert out == ["F", "AA", "SIL"]
    segs = to_segments(out + ["SIL"])
    assert [s.phone for s in segs] == ["F", "AA", "SIL"]
    assert segs[1].start == pytest.approx(0.01 + 0.0128 - 0.005)  # frame 1's window centre less half a frame


def test_speaker_adaptation_is_map_of_the_means(speech):
    """MAP re-estimation (Gauvain and Lee): with no prior weight every codeword a frame used moves
    onto the frames' average; with a huge prior weight nothing moves; and adapted to a line, the
    model explains that line better than as trained."""
    from lipsync.phonemes import NOISE_FLOOR
    from lipsync.sphinxmodel import features, load_model

    m = load_model()
    aa = m.phones.index("AA")
    x0 = np.random.default_rng(0).normal(0, 1, 39)
    feats = np.tile(x0, (20, 1))
    occ = np.zeros((20, len(m.phones), 3))
    occ[:, aa, 1] = 1.0
    moved = m.adapted(feats, occ, tau=1e-30)
    var = -0.5 / m._w_sq[aa]
    mu_new, mu_old = moved._w_lin[aa] * var, m._w_lin[aa] * var  # (stream, 128, 13)
    used = ~np.isclose(mu_new, mu_old).all(axis=2)
    assert used.any()
    for f in range(3):
        assert np.allclose(mu_new[f][used[f]], x0[13 * f:13 * f + 13])
    other = m.phones.index("IY")
    assert np.allclose(moved._w_lin[other], m._w_lin[other])  # a phone with no frames keeps its means
    assert np.allclose(m.adapted(feats, occ, tau=1e12)._w_lin, m._w_lin)

    samples, _ = speech
    line = features(samples + np.random.default_rng(0).normal(0, NOISE_FLOOR, samples.size))
    ll = m.loglik(line)
    post = np.exp(ll - ll.max(axis=(1, 2), keepdims=True))
    post /= post.sum(axis=(1, 2), keepdims=True)
    before = ll.max(axis=(1, 2)).mean()
    after = m.adapted(line, post, tau=2.0).loglik(line).max(axis=(1, 2)).mean()
    assert after > before + 1.0, (before, after)
