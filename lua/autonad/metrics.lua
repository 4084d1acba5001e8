-- autonad.metrics: evaluation metrics from a confusion matrix accumulated over batches
-- (core/ops/confusion.c): segmentation IoU / mIoU, F1 / mF1 and pixel accuracy; classification
-- accuracy, per-class recall and the matrix itself. Used by training, search and reports.
--   local cm = metrics.Confusion(K, {'background', 'scratch'}, {ignore_label = 255})
--   cm:update(logits, labels)            -- logits[..., K], labels one class per row (floats)
--   cm:segmentation().miou, cm:classification().accuracy, json.encode(cm:to_table())
-- Per-class results are lists indexed by class + 1 (iterate 1..K: a class that cannot be
-- scored is nil there, so # is not its length). A class absent from both the truth and the
-- predictions has no IoU and no F1: it is left out of mIoU and mF1, not counted as 0 or 1.
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local C, check = core.C, core.check

local M = {}

local Confusion = class('Confusion')
M.Confusion = Confusion

local known = { ignore_label = true, workspace = true }

--- K classes (>= 1); names (optional) a list of K class names (default '0'..'K-1');
--- opts.ignore_label (default 255, as nn.CrossEntropy) rows are not counted;
--- opts.workspace the scratch for the per-thread counts (default the shared one).
function Confusion:init(K, names, opts)
    if type(K) ~= 'number' or K < 1 or K % 1 ~= 0 then
        error('metrics.Confusion: K must be a positive integer, got ' .. tostring(K), 3)
    end
    if names ~= nil then
        if type(names) ~= 'table' or #names ~= K then
            error(string.format('metrics.Confusion: names must be a list of %d names', K), 3)
        end
        for i = 1, K do
            if type(names[i]) ~= 'string' then
                error('metrics.Confusion: names[' .. i .. '] is not a string', 3)
            end
        end
    end
    opts = opts or {}
    for k in pairs(opts) do
        if not known[k] then
            error('metrics.Confusion: unknown option ' .. tostring(k) ..
                ' (expected ignore_label, workspace)', 3)
        end
    end
    self.K = K
    self.names = {}
    for i = 1, K do self.names[i] = names and names[i] or tostring(i - 1) end
    self.ignore_label = opts.ignore_label or 255
    self.ws = opts.workspace or require('autonad.workspace').default
    self.counts = ffi.new('int64_t[?]', K * K)
end

--- Adds one batch: logits[..., K] (argmax per row) against labels (one per row).
function Confusion:update(logits, labels)
    -- the core takes K from logits: a wider tensor would count past the matrix
    local k = logits:dim() > 0 and logits:size(logits:dim()) or 0
    if k ~= self.K then
        error(string.format('metrics.Confusion.update: logits has %d classes, the matrix %d',
            k, self.K), 2)
    end
    check(C.nad_confusion_update(self.ws, self.ignore_label, logits, labels, self.counts))
    return self
end

function Confusion:reset()
    ffi.fill(self.counts, ffi.sizeof('int64_t') * self.K * self.K)
    return self
end

--- Rows of true class t predicted as p (0-based classes).
function Confusion:count(t, p) return tonumber(self.counts[t * self.K + p]) end

--- Adds another Confusion's counts (same K), e.g. from a second evaluation worker.
function Confusion:add(other)
    if other.K ~= self.K then
        error(string.format('metrics.Confusion.add: K %d vs %d', other.K, self.K), 2)
    end
    for i = 0, self.K * self.K - 1 do self.counts[i] = self.counts[i] + other.counts[i] end
    return self
end

--- The matrix as nested lists: m[t + 1][p + 1] = rows of true class t predicted as p.
function Confusion:matrix()
    local m = {}
    for t = 0, self.K - 1 do
        local row = {}
        for p = 0, self.K - 1 do row[p + 1] = self:count(t, p) end
        m[t + 1] = row
    end
    return m
end

-- per class: tp, fp (predicted c, truth other), fn (truth c, predicted other); and the total
function Confusion:_tallies()
    local K, tp, fp, fn, total = self.K, {}, {}, {}, 0
    for c = 1, K do tp[c], fp[c], fn[c] = 0, 0, 0 end
    for t = 0, K - 1 do
        for p = 0, K - 1 do
            local n = self:count(t, p)
            total = total + n
            if t == p then tp[t + 1] = tp[t + 1] + n
            else
                fn[t + 1] = fn[t + 1] + n
                fp[p + 1] = fp[p + 1] + n
            end
        end
    end
    return tp, fp, fn, total
end

-- mean of the non-nil entries of list[1..K]; nil when there is none
local function mean_present(list, K)
    local s, n = 0, 0
    for c = 1, K do
        if list[c] ~= nil then s, n = s + list[c], n + 1 end
    end
    return n > 0 and s / n or nil
end

--- Counted rows (pixels or images).
function Confusion:total()
    local _, _, _, total = self:_tallies()
    return total
end

--- Segmentation summary: iou[c] = tp / (tp + fp + fn), f1[c] = 2 tp / (2 tp + fp + fn)
--- (nil for a class absent from truth and predictions), miou and mf1 their means over the
--- classes that have one (background included), pixel_accuracy = sum tp / counted pixels
--- (nil before any count), and support[c] = true pixels of class c.
function Confusion:segmentation()
    local K = self.K
    local tp, fp, fn, total = self:_tallies()
    local iou, f1, support, correct = {}, {}, {}, 0
    for c = 1, K do
        local union = tp[c] + fp[c] + fn[c]
        if union > 0 then
            iou[c] = tp[c] / union
            f1[c] = 2 * tp[c] / (union + tp[c])
        end
        support[c] = tp[c] + fn[c]
        correct = correct + tp[c]
    end
    return { iou = iou, miou = mean_present(iou, K), f1 = f1, mf1 = mean_present(f1, K),
             pixel_accuracy = total > 0 and correct / total or nil, support = support }
end

--- Classification summary: accuracy = correct / counted images (nil before any count),
--- recall[c] = tp / (tp + fn) (nil for a class with no true sample), precision[c] =
--- tp / (tp + fp) (nil for a class never predicted), mean_recall over classes that have one
--- (balanced accuracy), and matrix (see Confusion:matrix).
function Confusion:classification()
    local K = self.K
    local tp, fp, fn, total = self:_tallies()
    local recall, precision, correct = {}, {}, 0
    for c = 1, K do
        if tp[c] + fn[c] > 0 then recall[c] = tp[c] / (tp[c] + fn[c]) end
        if tp[c] + fp[c] > 0 then precision[c] = tp[c] / (tp[c] + fp[c]) end
        correct = correct + tp[c]
    end
    return { accuracy = total > 0 and correct / total or nil, recall = recall,
             precision = precision, mean_recall = mean_present(recall, K),
             matrix = self:matrix() }
end

--- Plain data for json.encode: the class names, the matrix, the totals and both summaries,
--- with the per-class values as one record per class ({name, iou, f1, recall, precision,
--- support}; a value that cannot be computed is left out of its record, so JSON has no holes).
function Confusion:to_table()
    local seg, cls = self:segmentation(), self:classification()
    local classes = {}
    for c = 1, self.K do
        classes[c] = { name = self.names[c], iou = seg.iou[c], f1 = seg.f1[c],
                       recall = cls.recall[c], precision = cls.precision[c],
                       support = seg.support[c] }
    end
    return { num_classes = self.K, ignore_label = self.ignore_label, total = self:total(),
             matrix = cls.matrix, classes = classes, miou = seg.miou, mf1 = seg.mf1,
             pixel_accuracy = seg.pixel_accuracy, accuracy = cls.accuracy,
             mean_recall = cls.mean_recall }
end

function Confusion:__tostring()
    local seg = self:segmentation()
    local function f(v) return v and string.format('%.4f', v) or '-' end
    return string.format('metrics.Confusion(K=%d, total=%d, mIoU=%s, mF1=%s, acc=%s)', self.K,
        self:total(), f(seg.miou), f(seg.mf1), f(seg.pixel_accuracy))
end

return M
