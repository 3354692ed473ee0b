"""A random SAM small enough for CPU tests, shared by the demo and SAM-path tests."""
import torch


def build_tiny_sam(checkpoint=None):
    """A random SAM small enough for CPU tests: ViT depth 1, width 32, 256-pixel input, 1-layer two-way decoder."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    sam = Sam(
        image_encoder=ImageEncoderViT(img_size=256, patch_size=16, embed_dim=32, depth=1, num_heads=2, out_chans=32),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=32,
            num_multimask_outputs=3,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=32, num_heads=2),
        ),
    )
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return sam.eval()
