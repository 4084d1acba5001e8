-- autonad.nn.CrossEntropy(opts): the softmax cross-entropy criterion over the last dim of
-- logits[..., K] (pixels of a segmentation map or whole images), labels a float tensor of class
-- indices with one per row. opts.ignore_label (default 255) rows are skipped.
--   forward(logits, labels) -> loss (a number, the mean over counted rows)
--   backward(logits, labels[, scale]) -> dlogits (scale defaults to 1)
-- Mirrors core/ops/cross_entropy.c.
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local CrossEntropy = class('CrossEntropy', Module)

function CrossEntropy:init(opts)
    Module.init(self)
    opts = opts or {}
    self.ignore_label = opts.ignore_label or 255
    self.loss_buf = ffi.new('float[1]')
end

function CrossEntropy:forward(logits, labels)
    check(C.nad_cross_entropy_forward(self.ignore_label, logits, labels, self.loss_buf))
    self.output = self.loss_buf[0]
    return self.output
end

function CrossEntropy:backward(logits, labels, scale)
    check(C.nad_cross_entropy_backward(self.ignore_label, scale or 1, logits, labels,
        self.grad_input))
    return self.grad_input
end

function CrossEntropy:__tostring()
    return 'nn.CrossEntropy(ignore_label ' .. self.ignore_label .. ')'
end

return CrossEntropy
