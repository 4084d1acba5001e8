-- test_metrics.lua: metrics.Confusion against hand-computed small cases: IoU, F1, accuracy,
-- recall and precision, an ignored label, a class absent from truth and predictions (left out
-- of the means), a predicted-only class (IoU 0, counted), accumulation, reset and JSON.
local autonad = require 'autonad'
local metrics = require 'autonad.metrics'
local json = require 'autonad.json'
local T = require 'testing'

local tests = {}

-- logits [n, K] with the highest score at pred[i] (plus a smaller runner-up, so the argmax is
-- not trivially the first index), labels [n] = truth[i]
local function batch(K, truth, pred)
    local n = #truth
    local logits, labels = autonad.tensor(n, K), autonad.tensor(n)
    for i = 1, n do
        for k = 1, K do logits:set(-0.1 * k, i, k) end
        logits:set(2.0, i, pred[i] + 1)
        labels:set(truth[i], i)
    end
    return logits, labels
end

-- (truth, pred) pairs of the main case, K = 4, class 3 never seen; the 255 rows predict
-- class 3 and must not make it present
local pairs_main = {
    { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 1 }, { 1, 1 }, { 1, 1 }, { 1, 0 }, { 2, 2 }, { 2, 1 },
    { 255, 3 }, { 255, 3 },
}

local function main_batch()
    local truth, pred = {}, {}
    for i, p in ipairs(pairs_main) do truth[i], pred[i] = p[1], p[2] end
    return batch(4, truth, pred)
end

function tests.segmentation_hand_case_with_ignore_and_absent_class()
    local cm = metrics.Confusion(4, { 'background', 'a', 'b', 'c' })
    cm:update(main_batch())
    T.eq(cm:total(), 9, 'ignored rows are not counted')
    local m = cm:matrix()
    local want = { { 3, 1, 0, 0 }, { 1, 2, 0, 0 }, { 0, 1, 1, 0 }, { 0, 0, 0, 0 } }
    for t = 1, 4 do T.all_near(m[t], want[t], 0, 'matrix row ' .. t) end
    local s = cm:segmentation()
    -- class 0: tp 3 fp 1 fn 1; class 1: tp 2 fp 2 fn 1; class 2: tp 1 fp 0 fn 1
    T.near(s.iou[1], 3 / 5, 1e-12)
    T.near(s.iou[2], 2 / 5, 1e-12)
    T.near(s.iou[3], 1 / 2, 1e-12)
    T.eq(s.iou[4], nil, 'absent class has no IoU')
    T.near(s.miou, (3 / 5 + 2 / 5 + 1 / 2) / 3, 1e-12, 'mIoU over the three present classes')
    T.near(s.f1[1], 6 / 8, 1e-12)
    T.near(s.f1[2], 4 / 7, 1e-12)
    T.near(s.f1[3], 2 / 3, 1e-12)
    T.eq(s.f1[4], nil, 'absent class has no F1')
    T.near(s.mf1, (6 / 8 + 4 / 7 + 2 / 3) / 3, 1e-12)
    T.near(s.pixel_accuracy, 6 / 9, 1e-12)
    T.all_near(s.support, { 4, 3, 2, 0 }, 0, 'support')
end

function tests.classification_hand_case()
    local cm = metrics.Confusion(4)
    cm:update(main_batch())
    local c = cm:classification()
    T.near(c.accuracy, 6 / 9, 1e-12)
    T.near(c.recall[1], 3 / 4, 1e-12)
    T.near(c.recall[2], 2 / 3, 1e-12)
    T.near(c.recall[3], 1 / 2, 1e-12)
    T.eq(c.recall[4], nil, 'no true sample: no recall')
    T.near(c.precision[1], 3 / 4, 1e-12)
    T.near(c.precision[2], 2 / 4, 1e-12)
    T.near(c.precision[3], 1, 1e-12)
    T.eq(c.precision[4], nil, 'never predicted: no precision')
    T.near(c.mean_recall, (3 / 4 + 2 / 3 + 1 / 2) / 3, 1e-12)
    T.eq(c.matrix[2][1], 1)
    T.eq(cm.names[4], '3', 'default names are the class indices')
end

function tests.predicted_only_class_scores_zero_and_counts()
    -- truth all class 0; one row predicted as class 1: class 1 IoU 0 (present), so mIoU falls
    local cm = metrics.Confusion(2)
    cm:update(batch(2, { 0, 0, 0, 0 }, { 0, 0, 0, 1 }))
    local s, c = cm:segmentation(), cm:classification()
    T.near(s.iou[1], 3 / 4, 1e-12)
    T.eq(s.iou[2], 0)
    T.near(s.miou, 3 / 8, 1e-12)
    T.eq(s.f1[2], 0)
    T.eq(c.recall[2], nil)
    T.eq(c.precision[2], 0)
    T.near(c.accuracy, 3 / 4, 1e-12)
end

function tests.segmentation_maps_accumulate_and_reset()
    -- a [2,2,3,K=3] logits map with a [2,2,3] mask, fed as one batch and as two halves
    local truth = { 0, 0, 1, 2, 255, 1, 0, 2, 2, 1, 1, 0 }
    local pred = { 0, 1, 1, 2, 0, 1, 0, 2, 0, 1, 2, 0 }
    local logits, labels = batch(3, truth, pred)
    local l4, m3 = logits:view(2, 2, 3, 3), labels:view(2, 2, 3)
    local whole = metrics.Confusion(3)
    whole:update(l4, m3)
    local halves = metrics.Confusion(3)
    halves:update(l4:narrow(1, 1, 1), m3:narrow(1, 1, 1))
    halves:update(l4:narrow(1, 2, 1), m3:narrow(1, 2, 1))
    for t = 0, 2 do
        for p = 0, 2 do T.eq(halves:count(t, p), whole:count(t, p), 'cell ' .. t .. ',' .. p) end
    end
    -- hand tallies: class 0: tp 3 (rows 1,7,12), fn 1 (row 2), fp 1 (row 9) -> IoU 3/5
    local s = whole:segmentation()
    T.eq(whole:total(), 11)
    T.near(s.iou[1], 3 / 5, 1e-12)
    -- class 1: tp 3 (rows 3,6,10), fn 1 (row 11), fp 1 (row 2) -> 3/5; class 2: tp 2, fn 1,
    -- fp 1 -> 2/4
    T.near(s.iou[2], 3 / 5, 1e-12)
    T.near(s.iou[3], 2 / 4, 1e-12)
    T.near(s.pixel_accuracy, 8 / 11, 1e-12)
    local doubled = metrics.Confusion(3):add(whole):add(halves)
    T.eq(doubled:count(0, 0), 6)
    whole:reset()
    T.eq(whole:total(), 0)
    local empty = whole:segmentation()
    T.eq(empty.miou, nil, 'nothing counted: no mIoU')
    T.eq(empty.pixel_accuracy, nil)
end

function tests.to_table_is_json_without_holes()
    local cm = metrics.Confusion(4, { 'background', 'a', 'b', 'c' })
    cm:update(main_batch())
    local back = json.decode(json.encode(cm:to_table()))
    T.eq(back.num_classes, 4)
    T.eq(back.total, 9)
    T.eq(#back.classes, 4)
    T.eq(back.classes[2].name, 'a')
    T.near(back.classes[2].iou, 2 / 5, 1e-12)
    T.eq(back.classes[4].iou, nil)
    T.eq(back.classes[4].support, 0)
    T.near(back.miou, 0.5, 1e-12)
    T.eq(back.matrix[1][2], 1)
    T.ok(tostring(cm):find('mIoU=0.5000', 1, true), tostring(cm))
end

function tests.errors_name_the_problem()
    local cm = metrics.Confusion(4)
    local logits, labels = batch(4, { 0, 7 }, { 0, 1 })
    T.errors(function() cm:update(logits, labels) end,
        'confusion_update: label 7 at row 1 is not a class in [0, 4) nor the ignore label 255')
    T.eq(cm:total(), 0, 'nothing counted on failure')
    T.errors(function() cm:update(autonad.tensor(2, 5), autonad.tensor(2)) end,
        'metrics.Confusion.update: logits has 5 classes, the matrix 4')
    T.errors(function() metrics.Confusion(0) end, 'K must be a positive integer')
    T.errors(function() metrics.Confusion(2, { 'x' }) end, 'names must be a list of 2 names')
    T.errors(function() metrics.Confusion(2, nil, { ignore = 1 }) end, 'unknown option ignore')
    -- a custom ignore label
    local c2 = metrics.Confusion(2, nil, { ignore_label = -1 })
    c2:update(batch(2, { -1, 1 }, { 0, 1 }))
    T.eq(c2:total(), 1)
end

return tests
