-- autonad.supernet.cost: exact parameter and multiply-accumulate counts of a subnet, from the
-- architecture alone (docs/supernet.md, "Counting"). The latency prior, the search's budget
-- and the reports use it; tests check it against the built network and the PyTorch reference.
local M = {}

local HEAD_DIM = 32

local function conv_out(h, k, stride, pad) return math.floor((h + 2 * pad - k) / stride) + 1 end

-- a searchable decoder slot: params and MACs per output pixel
local function slot(ci, co, kind)
    if kind == '1x1' then return ci * co, ci * co end
    if kind == '3x3' or kind == 'dil3x3' then return 9 * ci * co, 9 * ci * co end
    if kind == '5x5' then return 25 * ci * co, 25 * ci * co end
    local u = math.min(ci, co) -- dw3x3: depthwise on u channels + pointwise ci -> co
    return 9 * u + ci * co, 9 * u + ci * co
end

--- opts: in_channels, classes, head ('seg'|'cls'), input = {H, W}. Returns
--- { params = n, macs = n, flops = 2 * macs, sizes = { {H_s, W_s}, ... } }.
function M.count(space, a, opts)
    local params, macs = 0, 0
    local function add(p, m) params = params + p; macs = macs + m end
    local H, W = opts.input[1], opts.input[2]
    local cin = opts.in_channels or 1
    local sizes, widths = {}, a.width
    for s, st in ipairs(space.stages) do
        local c, k = a.width[s], st.patch_kernel
        H, W = conv_out(H, k, st.patch_stride, math.floor(k / 2)), conv_out(W, k, st.patch_stride, math.floor(k / 2))
        sizes[s] = { H, W }
        local P = H * W
        add(c * k * k * cin + c + 2 * c, P * c * cin * k * k)
        for b = 1, a.depth[s] do
            local hd = math.floor(c * a.ratio[s][b])
            local h = c / HEAD_DIM
            -- norm1, q, proj, norm2, Mix-FFN
            add(2 * c + (c * c + c) + (c * c + c) + 2 * c, 2 * P * c * c)
            add(c * hd + hd + 9 * hd + hd + hd * c + c, P * c * hd + P * hd * 9 + P * hd * c)
            add(2 * c * c + 2 * c, 0) -- kv's weights (its MACs depend on the mixer)
            local op = a.op[s][b]
            if op == 'attention' then
                local sr, pk = st.sr_ratio, P
                if sr > 1 then
                    pk = conv_out(H, sr, sr, 0) * conv_out(W, sr, sr, 0)
                    add(c * sr * sr * c + c + 2 * c, pk * c * c * sr * sr)
                end
                add(0, pk * 2 * c * c + 2 * P * pk * c)
            elseif op == 'conv' then
                add(9 * 3 * h + 9 + c * 9 * 9 + c + 2 * c, P * 2 * c * c + P * 9 * 3 * h * HEAD_DIM + P * c * 81)
            else -- mlp
                add((c / 4) * c + c / 4 + 3 * c * (c / 4) + 3 * c + c * c + c,
                    P * 2 * c * c + c * c / 4 + (c / 4) * 3 * c + P * c * c)
            end
        end
        add(2 * c, 0)
        cin = c
    end
    local K = opts.classes
    if opts.head == 'cls' then
        for s = 1, #space.stages do add(K * widths[s], K * widths[s]) end
        add(K, 0)
    else
        local S = #space.stages
        local D, conv, c4 = space.decoder.width, a.decoder.conv, widths[S]
        local slot_of = {}
        for i, name in ipairs(space.decoder.slots) do slot_of[name] = conv[i] end
        local P4 = sizes[S][1] * sizes[S][2]
        for i = 1, 4 do
            local p = a.decoder.pool[i]
            local sp, sm = slot(c4, c4 / 4, slot_of['ppm' .. i])
            add(sp + 2 * (c4 / 4), p * p * sm)
        end
        add(D * 2 * c4 + 2 * D, P4 * D * 2 * c4)
        for s = 1, S - 1 do
            local Ps = sizes[s][1] * sizes[s][2]
            local lp, lm = slot(widths[s], D, slot_of['lateral' .. s])
            local op_, om = slot(D, D, slot_of['out' .. s])
            add(lp + 2 * D + op_ + 2 * D, Ps * (lm + om))
        end
        local P1 = sizes[1][1] * sizes[1][2]
        add(S * D * D + D + 2 * D + D * D + D + 2 * D + K * D + K, P1 * (S * D * D + D * D + D * K))
        add(K * K * 9, opts.input[1] * opts.input[2] * K * K * 9)
    end
    return { params = params, macs = macs, flops = 2 * macs, sizes = sizes }
end

return M
