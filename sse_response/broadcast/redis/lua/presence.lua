-- Write one process's presence record of a channel, with an expiry from
-- this server's clock.
--
-- KEYS[1]: the channel's presence hash (field: a process; value:
--          '<expiry in ms> <JSON list of its streams' info>')
-- ARGV[1]: the process
-- ARGV[2]: the ttl in ms
-- ARGV[3]: the JSON list, or '' when the process has no stream left there
-- ARGV[4]: '1' on a refresh: drop the records whose expiry passed as well
--
-- The key carries the channel's hash tag, so this runs on a cluster too.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], (now + ttl) .. ' ' .. ARGV[3])
end
if ARGV[4] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local expiry = tonumber(string.match(all[i + 1], '^%d+'))
    if expiry == nil or expiry <= now then
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
-- Every process refreshes its records with the same ttl: the hash outlives
-- them all, and goes when the last one stops writing.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return now
