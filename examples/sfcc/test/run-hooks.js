'use strict';
/**
 * Runs the cartridge's hooks outside SFCC, against stand-ins for the dw.*
 * APIs it uses, for one shopper: add, update quantity, remove, checkout,
 * order placed. Prints the HTTP requests the hooks made as JSON lines
 * ({path, signature, body}); cli/tests/e2e_sources.rs replays them to a live
 * `cartback dev`, which checks the signatures and the events.
 *
 * Usage: node run-hooks.js <ingest secret> <basket id> <ISO time of the first change>
 */
var Module = require('module');
var crypto = require('crypto');

var secret = process.argv[2];
var basketId = process.argv[3];
var start = new Date(process.argv[4]).getTime();
var requests = [];

function money(value, currency) {
    return { available: true, value: value, currencyCode: currency };
}

var dw = {
    'dw/crypto/Mac': (function () {
        function Mac(algorithm) {
            if (algorithm !== 'HmacSHA256') throw new Error('unexpected algorithm ' + algorithm);
        }
        Mac.HMAC_SHA_256 = 'HmacSHA256';
        Mac.prototype.digest = function (input, key) {
            return crypto.createHmac('sha256', key).update(input, 'utf8').digest();
        };
        return Mac;
    })(),
    'dw/crypto/Encoding': { toHex: function (bytes) { return Buffer.from(bytes).toString('hex'); } },
    'dw/system/Logger': { getLogger: function () { return { warn: function () {}, error: function () {} }; } },
    'dw/system/Site': {
        getCurrent: function () {
            return { getCustomPreferenceValue: function (name) { return name === 'cartbackIngestSecret' ? secret : null; } };
        }
    },
    'dw/system/Status': (function () {
        function Status(code) { this.code = code; }
        Status.OK = 0;
        return Status;
    })(),
    'dw/svc/LocalServiceRegistry': {
        createService: function (id, callbacks) {
            return {
                call: function (body) {
                    var request = { headers: {} };
                    var svc = {
                        getConfiguration: function () {
                            return { getCredential: function () { return { getURL: function () { return 'https://cartback.example/'; } }; } };
                        },
                        setURL: function (url) { request.url = url; },
                        setRequestMethod: function (method) { request.method = method; },
                        addHeader: function (name, value) { request.headers[name] = value; }
                    };
                    var payload = callbacks.createRequest(svc, body);
                    requests.push({
                        service: id,
                        method: request.method,
                        path: request.url.replace('https://cartback.example', ''),
                        signature: request.headers['X-Cartback-Signature'],
                        body: payload
                    });
                    return { ok: true };
                }
            };
        }
    }
};

var resolve = Module._resolveFilename;
Module._resolveFilename = function (request) {
    return dw[request] ? request : resolve.apply(this, arguments);
};
Object.keys(dw).forEach(function (name) {
    require.cache[name] = { id: name, filename: name, loaded: true, exports: dw[name] };
});

var hooks = require('../cartridges/int_cartback/cartridge/scripts/hooks/cartback.js');

function line(id, name, price, quantity) {
    return { productID: id, productName: name, basePrice: money(price, 'USD'), quantityValue: quantity };
}
var lines = [];
var basket = {
    UUID: basketId,
    currencyCode: 'USD',
    customer: { registered: false },
    customerEmail: null,
    billingAddress: null,
    custom: {},
    lastModified: new Date(start),
    getProductLineItems: function () { return { toArray: function () { return lines.slice(); } }; }
};
function touch(minutes) { basket.lastModified = new Date(start + minutes * 60000); }

lines.push(line('701643108633M', 'Long Sleeve Crew Neck', 19.99, 1));
hooks.afterPOST(basket, [{ product_id: '701643108633M', quantity: 1 }]);
touch(1);
lines[0].quantityValue = 2;
hooks.afterPATCH(basket, 'item-1', { quantity: 2 });
touch(2);
lines.push(line('25720044M', 'Striped Scarf', 24.0, 1));
hooks.afterPOST(basket, [{ product_id: '25720044M', quantity: 1 }]);
touch(3);
lines.pop();
hooks.afterDELETE(basket, 'item-2');
touch(4);
basket.customerEmail = 'sfcc.cartridge@example.com';
basket.billingAddress = { firstName: 'Stephanie', phone: null };
basket.custom.cartbackEmailConsent = true;
hooks.afterPUT(basket, { email: basket.customerEmail });
var checkoutRequests = requests.length;

hooks.beforePOST(basket);
var order = {
    orderNo: '00000777',
    currencyCode: 'USD',
    customer: basket.customer,
    custom: { cartbackBasketId: basket.custom.cartbackBasketId },
    creationDate: new Date(start + 5 * 60000),
    totalGrossPrice: money(39.98, 'USD')
};
var last = process.argv[5] === 'with-order';
if (last) {
    hooks.afterPOST(order);
}
requests.forEach(function (r, i) {
    if (i < checkoutRequests || last) process.stdout.write(JSON.stringify(r) + '\n');
});
