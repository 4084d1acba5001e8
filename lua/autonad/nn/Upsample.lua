-- autonad.nn.Upsample{size = s | {h, w}, align_corners = false}: bilinear resize of
-- x[N,H,W,C] with PyTorch's interpolate(mode='bilinear') semantics. forward(x, size) resizes
-- to another size for that call (the decoder matches a finer map). Mirrors core/ops/resize.c.
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local Upsample = class('Upsample', Module)

local function parse_size(size)
    if type(size) == 'table' then return size[1], size[2] end
    return size, size
end

function Upsample:init(opts)
    Module.init(self)
    opts = opts or {}
    if opts.mode and opts.mode ~= 'bilinear' then
        error("autonad: Upsample supports mode 'bilinear' only, got '" .. tostring(opts.mode) .. "'", 3)
    end
    if opts.size then self.out_h, self.out_w = parse_size(opts.size) end
    self.align_corners = opts.align_corners and true or false
end

function Upsample:forward(x, size)
    local h, w = self.out_h, self.out_w
    if size then h, w = parse_size(size) end
    if not h then error('autonad: Upsample needs a size (opts.size or forward(x, size))', 2) end
    check(C.nad_resize_bilinear_forward(h, w, self.align_corners and 1 or 0, x, self.output))
    return self.output
end

function Upsample:backward(x, dy)
    check(C.nad_resize_bilinear_backward(self.align_corners and 1 or 0, x, dy, self.grad_input))
    return self.grad_input
end

function Upsample:__tostring()
    return string.format('nn.Upsample(%s, bilinear, align_corners=%s)',
        self.out_h and (self.out_h .. 'x' .. self.out_w) or 'size per call', tostring(self.align_corners))
end

return Upsample
