"""`extract`, `merge-features`, `import-features`: the region features (features/)."""

from __future__ import annotations

from ..core.errors import VisdialLGError
from .registry import command


def _extract_arguments(p):
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="DIR", help="every image in these folders")
    source.add_argument("--dialogs", metavar="JSON", help="the images of a VisDial dialogs JSON (with --image-dir)")
    p.add_argument("--image-dir", nargs="+", metavar="DIR", help="folders holding the dialogs' images")
    p.add_argument("--weights", required=True, help="detector weights file, or 'random'")
    p.add_argument("--out", required=True, help="feature HDF5 (written as OUT.partial until complete)")
    p.add_argument("--boxes", help="JSON of given boxes per image id: features for these boxes instead")
    p.add_argument("--shard", default="0/1", help="i/n: the i-th (0-based) of n contiguous blocks of images")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


@command("extract", "bottom-up-attention region features of an image set into a feature HDF5 (shard)",
         _extract_arguments)
def _extract(args, config):
    import json

    from ..features.extract import extract_command

    if args.dialogs and not args.image_dir:
        raise VisdialLGError("extract --dialogs needs --image-dir DIR [DIR ...] to find the images in")
    summary = extract_command(args.out, args.weights, config.features, image_dirs=args.images or args.image_dir,
                              dialogs=args.dialogs, boxes=args.boxes, shard=args.shard, device=args.device)
    print(json.dumps(summary))


def _merge_features_arguments(p):
    p.add_argument("shards", nargs="+", metavar="SHARD")
    p.add_argument("--out", required=True)
    p.add_argument("--virtual", action="store_true", help="HDF5 virtual datasets over the shards (no copy)")


@command("merge-features", "merge extraction shards into one feature HDF5", _merge_features_arguments, config=False)
def _merge_features(args, config):
    from ..features.merge import merge_shards

    merge_shards(args.shards, args.out, virtual=args.virtual)


def _import_features_arguments(p):
    p.add_argument("src", metavar="SRC", help="LTMI *_resnet101_faster_rcnn_genome_100.h5")
    p.add_argument("--out", required=True)
    p.add_argument("--storage-dtype", choices=["float32", "float16"], help="features dtype (default float32)")


@command("import-features", "import an LTMI feature HDF5 in place of extraction", _import_features_arguments,
         config=False)
def _import_features(args, config):
    from ..features.merge import import_ltmi

    import_ltmi(args.src, args.out, storage_dtype=args.storage_dtype)
