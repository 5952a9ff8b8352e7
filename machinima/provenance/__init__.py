"""Disclosure: every synthetic output says what it is, verifiably.

Three marks, from the most to the least fragile:

1. A **C2PA manifest** (Content Credentials, ``c2pa-python``) embedded in each PNG/JPEG frame
   and each delivered MP4: the actions taken (``c2pa.created`` with the IPTC digital source
   type ``compositeWithTrainedAlgorithmicMedia`` or ``trainedAlgorithmicMedia``, then one
   ``c2pa.edited`` per post step), the take and its source passes as ingredients, and an
   ``org.machinima.provenance`` assertion with take id, step id, params hash, the rights
   records relied on and any override. Signed with the production's certificate
   (``[rights] cert``/``key`` in machinima.toml) or a local test chain (``make_test_chain``).
   One changed pixel invalidates it.
2. An **invisible watermark** in the pixels carrying a 32-bit hash of the take id and a
   16-bit hash of the step id (+ CRC-16): the 64 bits are convolutionally coded (K=7, rate
   1/3: 210 coded bits), and each coded bit is spread over ~25-30 coefficients by
   quantization-index modulation of five low DCT coefficients of 8x8 blocks on a luma grid of
   at most 48 blocks across (each block spans ~40 px at 1080p); decoding sums soft decisions
   (over frames too) and runs a soft Viterbi decoder. PSNR about 43.7 dB. It survives JPEG
   q75/q50, H.264 re-encoding (crf 23-28 at every size, up to crf 35 at 720p and above) and
   rescaling that keeps the aspect ratio; it survives when the manifest is stripped.
3. An optional visible **"AI-modified" label** burned into a corner.

Per-frame signing: post steps write PNG frames; each frame gets its own manifest (about 7 ms
at 1080p without a thumbnail), so any single frame pulled from a delivery still verifies.
Videos are signed once per file after encoding (``sign_file``).

Errors are ``machinima.rights.DisclosureError``. c2pa, cv2 and cryptography are imported
lazily inside functions.
"""

from __future__ import annotations

from .certs import (SigningIdentity, TestChain, identity_from_config, load_identity, make_test_chain,
                    trust_anchors_from_config)
from .disclosure import Disclosure, burn_label, disclosure_from_config, write_disclosed_video
from .manifest import (ASSERTION, IPTC, MIME, SOURCE_TYPES, VIDEO_EXTS, build_manifest, mime_of, png_single_idat,
                       sign_bytes, sign_file)
from .verify import FileReport, is_picture, iter_media, read_manifest, verify_file, verify_path
from .watermark import (WM_BITS, WM_FOUND_CONFIDENCE, WM_MIN_SIDE, WM_SCHEME, WM_STRENGTH, WatermarkResult, can_watermark, cc_decode,
                        cc_encode, decode_watermark, embed_watermark, payload_bits, watermark_ids)
