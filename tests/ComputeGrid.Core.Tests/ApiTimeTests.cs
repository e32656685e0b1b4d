using System.Text.Json;
using ComputeGrid.Core;

namespace ComputeGrid.Core.Tests;

public class ApiTimeTests
{
    [Theory]
    [InlineData(0L, "1970-01-01T00:00:00Z")]
    [InlineData(1_764_979_200_000_000_000L, "2025-12-06T00:00:00Z")]
    [InlineData(1_764_979_200_123_456_789L, "2025-12-06T00:00:00.123456789Z")]
    [InlineData(1_764_979_200_100_000_000L, "2025-12-06T00:00:00.1Z")]
    [InlineData(-1L, "1969-12-31T23:59:59.999999999Z")]
    public void A_time_is_written_as_rfc_3339_in_utc_with_only_the_digits_it_needs_and_read_back_exactly(long ns, string text)
    {
        Assert.Equal(text, new ApiTime(ns).ToString());
        Assert.True(ApiTime.TryParse(text, null, out ApiTime back));
        Assert.Equal(ns, back.UnixNanoseconds);
    }

    [Theory]
    [InlineData("2025-12-06T01:00:00+01:00", 1_764_979_200_000_000_000L)]
    [InlineData("2025-12-05T19:00:00.5-05:00", 1_764_979_200_500_000_000L)]
    [InlineData("2025-12-06t00:00:00z", 1_764_979_200_000_000_000L)]
    public void An_offset_other_than_z_is_applied(string text, long ns)
    {
        Assert.True(ApiTime.TryParse(text, null, out ApiTime t));
        Assert.Equal(ns, t.UnixNanoseconds);
    }

    [Theory]
    [InlineData("2025-12-06T00:00:00")]
    [InlineData("2025-12-06")]
    [InlineData("1764979200000000000")]
    [InlineData("2025-12-06T00:00:00.1234567891Z")]
    [InlineData("2025-12-06T00:00:00.Z")]
    [InlineData("2025-13-06T00:00:00Z")]
    [InlineData("")]
    public void A_time_without_an_offset_or_with_more_than_nine_fraction_digits_is_refused(string text) =>
        Assert.False(ApiTime.TryParse(text, null, out _));

    [Fact]
    public void Every_nanosecond_survives_a_json_round_trip_so_ledger_timestamps_stay_exact_cursors()
    {
        var random = new Random(20261206);
        for (int i = 0; i < 10_000; i++)
        {
            long ns = random.NextInt64(0, 4_102_444_800_000_000_000L); // up to 2100
            string json = JsonSerializer.Serialize(new ApiTime(ns));
            Assert.Equal(ns, JsonSerializer.Deserialize<ApiTime>(json).UnixNanoseconds);
        }
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ApiTime>("1764979200000000000"));
    }
}
