"""Disclosure: every synthetic output says what it is, verifiably, and only we can say it.

Three marks, from the most to the least fragile:

1. A **C2PA manifest** (Content Credentials, ``c2pa-python``) embedded in each PNG/JPEG frame
   and each MP4: the actions taken (``c2pa.created`` with the IPTC digital source type, then
   one ``c2pa.edited`` per post step), the take and its source passes as ingredients, and an
   ``org.machinima.provenance`` assertion (production, take, step, params hash, the rights
   records relied on, any override). Signed with the production's certificate, else the
   project's own local chain (``trust``). One changed pixel invalidates it.
2. An **invisible watermark** (``watermark``) carrying the production, the hash of the
   output's manifest label and an HMAC tag keyed with the production's secret: anyone can
   see that a frame is marked, only the production can make (or check) what the mark says.
3. An optional visible **"AI-modified" label** burned into a corner.

Modules: ``certs`` (signing certificates), ``trust`` (which project signs, whom verify
trusts, the local chain), ``watermark`` (the codec), ``manifest`` (build and sign),
``disclosure`` (what a post step applies), ``decision`` (disclosure off, recorded in the
take), ``sigdoc`` (signed JSON: rights records, decisions), ``verify`` (read it all back).

Per-frame signing: each PNG frame gets its own manifest, so any single frame pulled from a
delivery still verifies; a video is signed once, after encoding, with every frame marked.
Errors are ``machinima.rights.DisclosureError``. c2pa, cv2 and cryptography are imported
lazily inside functions.
"""

from __future__ import annotations

from .certs import (SigningIdentity, TestChain, identity_from_config, load_identity, make_test_chain,
                    trust_anchors_from_config)
from .decision import Decision, decision_home, read_decision, record_decision
from .disclosure import Disclosure, burn_label, disclosure_for_step, disclosure_from_config, write_disclosed_video
from .manifest import (ASSERTION, IPTC, MIME, SOURCE_TYPES, VIDEO_EXTS, build_manifest, mime_of, new_manifest_id,
                       png_single_idat, sign_bytes, sign_file)
from .sigdoc import DocCheck, check_doc, sign_doc
from .trust import Signing, Trust, ensure_local_chain, find_project, project_of, signing_for, trust_for
from .verify import GOOD, FileReport, is_picture, iter_media, read_manifest, verify_file, verify_path
from .watermark import (WM_BITS, WM_FOUND_CONFIDENCE, WM_MIN_SIDE, WM_SCHEME, WM_STRENGTH, WatermarkMemory, WatermarkResult,
                        can_watermark, cc_decode, cc_encode, decode_watermark, embed_watermark, manifest_tag, payload_bits,
                        production_tag)
