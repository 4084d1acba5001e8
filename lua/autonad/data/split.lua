-- autonad.data.split: train / val / test splits of a dataset, as lists of sample indices.
-- From split files (one image path a line, relative to the dataset root, as in
-- shared/data/splits/<set>.<split>.txt) or a seeded split stratified by label.
local fs = require 'autonad.data.fs'
local random = require 'autonad.random'

local M = {}

--- Indices of the samples listed in the file at path. A listed path that does not exist, or
--- is not a sample of the dataset, is an error naming it.
function M.read(ds, path)
    local f = io.open(path, 'rb')
    if not f then error('split: split file ' .. path .. ' does not exist', 0) end
    local idx, seen, n = {}, {}, 0
    for line in f:lines() do
        n = n + 1
        local rel = line:gsub('\r$', ''):match('^%s*(.-)%s*$')
        if rel ~= '' and rel:sub(1, 1) ~= '#' then
            local i = ds:index_of(rel)
            if not i then
                f:close()
                local full = fs.join(ds.root, rel)
                if not fs.is_file(full) then
                    error('split: ' .. full .. ' (line ' .. n .. ' of ' .. path .. ') does not exist', 0)
                end
                error('split: ' .. full .. ' (line ' .. n .. ' of ' .. path .. ') is not a sample of ' .. ds.name, 0)
            end
            if seen[i] then
                f:close()
                error('split: ' .. rel .. ' is listed twice in ' .. path, 0)
            end
            seen[i] = true
            idx[#idx + 1] = i
        end
    end
    f:close()
    return idx
end

--- Splits from files: files = {train = path, val = path, test = path} (any subset), or a
--- prefix string: '<prefix>.train.txt' etc., those that exist (at least one must).
--- A sample in two splits is an error.
function M.from_files(ds, files)
    if type(files) == 'string' then
        local prefix, t = files, {}
        for _, s in ipairs({ 'train', 'val', 'test' }) do
            local p = prefix .. '.' .. s .. '.txt'
            if fs.is_file(p) then t[s] = p end
        end
        if not next(t) then error('split: no split file ' .. prefix .. '.{train,val,test}.txt', 0) end
        files = t
    end
    local out, owner = {}, {}
    local names = {}
    for s in pairs(files) do names[#names + 1] = s end
    table.sort(names)
    for _, s in ipairs(names) do
        out[s] = M.read(ds, files[s])
        for _, i in ipairs(out[s]) do
            if owner[i] then
                error('split: ' .. ds.samples[i].rel .. ' is in both ' .. owner[i] .. ' and ' .. s, 0)
            end
            owner[i] = s
        end
    end
    return out
end

local function shuffle(list, rng)
    for i = #list, 2, -1 do
        local j = rng:randint(1, i)
        list[i], list[j] = list[j], list[i]
    end
end

--- A split stratified by label: ratios = {train = 0.6, val = 0.2, test = 0.2} (any names,
--- normalised to sum 1), seed an integer. Within each label the samples are shuffled with
--- the seed and cut by the ratios (largest remainders get the odd samples), so the same seed
--- gives the same split. Indices in each split are sorted.
function M.stratified(ds, ratios, seed)
    local names, total = {}, 0
    for s, r in pairs(ratios) do
        if type(r) ~= 'number' or r < 0 then error('split: ratio ' .. s .. ' must be >= 0', 2) end
        names[#names + 1] = s
        total = total + r
    end
    if total <= 0 then error('split: ratios sum to 0', 2) end
    -- a fixed order of the names so that a seed means the same split on every run
    local order = { train = 1, val = 2, test = 3 }
    table.sort(names, function(a, b)
        local oa, ob = order[a] or 99, order[b] or 99
        if oa ~= ob then return oa < ob end
        return a < b
    end)
    local groups, labels = {}, {}
    for i, s in ipairs(ds.samples) do
        if not groups[s.label] then groups[s.label] = {}; labels[#labels + 1] = s.label end
        table.insert(groups[s.label], i)
    end
    table.sort(labels)
    local out = {}
    for _, s in ipairs(names) do out[s] = {} end
    local rng = random.new(seed or 0)
    for _, label in ipairs(labels) do
        local g = groups[label]
        shuffle(g, rng)
        local counts, used, rema = {}, 0, {}
        for k, s in ipairs(names) do
            local exact = #g * ratios[s] / total
            counts[k] = math.floor(exact)
            used = used + counts[k]
            rema[k] = { exact - counts[k], k }
        end
        table.sort(rema, function(a, b) if a[1] ~= b[1] then return a[1] > b[1] end return a[2] < b[2] end)
        for r = 1, #g - used do counts[rema[r][2]] = counts[rema[r][2]] + 1 end
        local pos = 0
        for k, s in ipairs(names) do
            for j = pos + 1, pos + counts[k] do table.insert(out[s], g[j]) end
            pos = pos + counts[k]
        end
    end
    for _, s in ipairs(names) do table.sort(out[s]) end
    return out
end

--- Writes a split as a file of paths relative to the root (the format M.read reads).
function M.write(ds, indices, path)
    local f = assert(io.open(path, 'wb'))
    for _, i in ipairs(indices) do f:write(ds.samples[i].rel, '\n') end
    f:close()
end

return M
