// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title The part of TestUSDC (ERC-20 + EIP-2612) the vault and the share tokens call.
interface IStablecoin {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;
}
