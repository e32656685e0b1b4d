using ComputeGrid.Chain;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Chain;

/// <summary>The chain's public description: where the contracts are, so wallets and x402 clients can find them.</summary>
public static class ChainEndpoints
{
    /// <summary>Maps <c>GET /api/chain</c> (public: it holds addresses only, the same a payer reads from a 402).</summary>
    public static void MapChain(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/chain", Results<ContentHttpResult, ProblemHttpResult> (HttpContext http) =>
                http.RequestServices.GetService<ChainConnection>() is { } chain
                    ? TypedResults.Content(WithShareTokens(chain.Json, http.RequestServices.GetService<BridgeStore>()), "application/json")
                    : Problems.NotFound("This server runs without a chain (serve --chain RPC_URL --chain-key FILE, or --demo)."))
            .AllowAnonymous().WithTags("chain").Produces<ChainInfo>()
            .WithSummary("The server's chain (DATA/chain.json): RPC URL, chain id, contract addresses, payTo, the stablecoin's EIP-712 name and version, and the node share tokens deployed (shareTokens: node → address).");
    }

    // The share tokens live in bridge.db (deployed on a node's first withdrawal), not in chain.json: added to the answer.
    private static string WithShareTokens(string json, BridgeStore? store)
    {
        if (store is null || System.Text.Json.Nodes.JsonNode.Parse(json) is not System.Text.Json.Nodes.JsonObject o) return json;
        var tokens = new System.Text.Json.Nodes.JsonObject();
        foreach ((long node, string address) in store.ShareTokens()) tokens[node.ToString(System.Globalization.CultureInfo.InvariantCulture)] = address;
        o["shareTokens"] = tokens;
        return o.ToJsonString();
    }
}
