namespace ComputeGrid.Server.Tests.Observability;

/// <summary>The test's Prometheus reader accepts the format and refuses what breaks it (so its passes mean something).</summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void A_well_formed_exposition_parses_with_its_labels_and_values()
    {
        var text = PrometheusText.Parse("""
            # HELP requests_total Requests served.
            # TYPE requests_total counter
            requests_total{route="/a",code="200"} 3
            requests_total{route="/a \"q\" \\ \n",code="500"} 1 1700000000000
            # TYPE temperature gauge
            temperature{} -2.5e1
            # TYPE latency_seconds histogram
            latency_seconds_bucket{le="0.1"} 1
            latency_seconds_bucket{le="+Inf"} 2
            latency_seconds_sum 0.3
            latency_seconds_count 2

            """.Replace("\r", ""));
        Assert.Equal(4, text.Sum("requests_total"));
        Assert.Equal(1, text.Single("requests_total", ("route", "/a \"q\" \\ \n")));
        Assert.Equal(-25, text.Single("temperature"));
        Assert.Equal("Requests served.", text.Families["requests_total"].Help);
        Assert.Equal(2, text.Single("latency_seconds_count"));
    }

    [Theory]
    [InlineData("requests_total 1\n", "no # TYPE")]
    [InlineData("# TYPE requests counter\nrequests 1\n", "not named")]
    [InlineData("# TYPE a gauge\n# TYPE a gauge\na 1\n", "second TYPE")]
    [InlineData("# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "twice")]
    [InlineData("# TYPE a gauge\na{x=1} 1\n", "quoted value")]
    [InlineData("# TYPE a gauge\na{1x=\"1\"} 1\n", "not a label name")]
    [InlineData("# TYPE a gauge\na{x=\"\\t\"} 1\n", "unknown escape")]
    [InlineData("# TYPE a gauge\na one\n", "not a value")]
    [InlineData("# TYPE a gauge\na 1", "line feed")]
    [InlineData("# TYPE a_total counter\na_total -1\n", "counter")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "below")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "_count")]
    [InlineData("# TYPE a gauge\n9a 1\n", "not a metric name")]
    public void A_breach_of_the_format_is_refused_with_its_line(string exposition, string reason)
    {
        var e = Assert.Throws<FormatException>(() => PrometheusText.Parse(exposition));
        Assert.Contains(reason, e.Message);
    }
}
