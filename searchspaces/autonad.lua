-- The AutoNAD search space exactly as in the paper's reference code (reference section 2).
-- A search space is plain data: copy this file, change the lists, and point a recipe at it.
return {
    name = 'autonad',
    head_dim = 32,                                   -- attention heads = width / head_dim
    operators = { 'attention', 'conv', 'mlp' },      -- the token mixers every block chooses from
    drop_path = 0.1,                                 -- grows linearly over the largest net's blocks
    stages = {
        -- patch embedding: conv kernel k, stride s, padding k // 2, then LayerNorm
        { depth = { 1, 2, 3 }, width = { 32 }, ratio = { 7.5, 8, 8.5 }, sr_ratio = 8,
          patch_kernel = 7, patch_stride = 4 },
        { depth = { 1, 2, 3 }, width = { 32, 64, 96 }, ratio = { 7.5, 8, 8.5 }, sr_ratio = 4,
          patch_kernel = 3, patch_stride = 2 },
        { depth = { 1, 2, 3 }, width = { 128, 160, 192 }, ratio = { 3.5, 4, 4.5 }, sr_ratio = 2,
          patch_kernel = 3, patch_stride = 2 },
        { depth = { 1, 2, 3 }, width = { 192, 224, 256 }, ratio = { 3.5, 4, 4.5 }, sr_ratio = 1,
          patch_kernel = 3, patch_stride = 2 },
    },
    decoder = {
        width = 256,     -- D, the MFAM width
        groups = 8,      -- GroupNorm groups (the reference hard-codes its own; a setting here)
        conv_types = { '1x1', '3x3', '5x5', 'dil3x3', 'dw3x3' },
        -- the 10 searchable slots, in the reference code's order
        slots = { 'ppm1', 'ppm2', 'ppm3', 'ppm4', 'lateral3', 'lateral2', 'lateral1',
                  'out1', 'out2', 'out3' },
        pool_sizes = { { 1 }, { 1, 2 }, { 2, 3 }, { 5, 6 } },
    },
}
