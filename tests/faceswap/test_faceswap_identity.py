"""Identity truth: as a model trains, the merged face moves towards the source person, measured
with dlib's face embeddings (an independent face-recognition network, same person < 0.6) on the
merged frames, beside the same merge before any training. A model that does not learn fails."""

from __future__ import annotations

from faceswap_testdata import moving_clip, write_clip

SMALL = dict(e_dims=8, ae_dims=32, d_dims=8, d_mask_dims=4)


def test_merged_face_moves_towards_the_source_as_training_proceeds(tmp_path, facesets, grace, astronaut):
    import cv2

    from faceswap.backends import get_backend
    from faceswap.identity import IdentityMeter
    from faceswap.merge import MergeOptions
    from faceswap.model import ModelConfig
    from faceswap.swapcheck import merge_and_measure, source_embedding
    from faceswap.train import TrainConfig, Trainer

    meter, be = IdentityMeter(), get_backend("mediapipe")
    originals = moving_clip(cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA), 2)
    write_clip(tmp_path / "dst", originals)
    source = source_embedding(meter, be, [astronaut])
    t = Trainer(tmp_path / "m", src=facesets[0], dst=facesets[1], model_config=ModelConfig(arch="df", res=64, **SMALL),
                train_config=TrainConfig(batch=4, lr=1e-3, save_every=10**6, seed=1), rights={"override": "tests"})
    curve = []
    for it in (1, 60):
        t.train(it, progress=False)
        fig = merge_and_measure(tmp_path / "dst", tmp_path / f"out-{it}", meter, be, source, model=t.dir,
                                options=MergeOptions(blend="alpha", batch=4), override="test", rights_store=tmp_path / "rights")
        curve.append(fig.to_source)
    be.close()
    print("merged -> source after 1 and 60 iterations:", curve)
    # with lr=0 (a model that does not learn) both distances are the same (0.686 -> 0.686 here)
    assert curve[-1] < curve[0] - 0.05, curve
