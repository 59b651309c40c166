'use strict';

/**
 * Cartback for Salesforce Commerce Cloud: basket hooks (SCAPI and OCAPI run
 * the same hooks) that post Cartback's own signed events to POST /v1/events.
 *
 *   add, update quantity, remove  -> cart_update (the whole basket)
 *   customer set at checkout      -> begin_checkout (the whole basket, contact)
 *   order placed                  -> purchase
 *
 * A snapshot of the whole basket rather than the one line that changed: a
 * snapshot is the same whatever order events arrive in, and a lost one is
 * repaired by the next. Event ids name the basket and its last modification,
 * so a repeated hook call is a duplicate that changes nothing.
 *
 * Configuration (Business Manager):
 *   - service "cartback.http" (HTTP, POST) whose credential URL is Cartback's
 *     base URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com;
 *   - site preference "cartbackIngestSecret" (password): the ingest secret;
 *   - basket custom attribute "cartbackEmailConsent" (boolean), set by the
 *     checkout's marketing checkbox.
 * A failure to reach Cartback is logged (without contact data) and never
 * blocks the shopper: every hook returns OK.
 */

var Encoding = require('dw/crypto/Encoding');
var Mac = require('dw/crypto/Mac');
var Logger = require('dw/system/Logger');
var Site = require('dw/system/Site');
var Status = require('dw/system/Status');
var LocalServiceRegistry = require('dw/svc/LocalServiceRegistry');

var EVENTS_PATH = '/v1/events';
var log = Logger.getLogger('cartback', 'cartback');

/** t=<unix seconds>,v2=<hex HMAC-SHA256(secret, "<t>.POST./v1/events.<body>")> (see the README, "Signing (v2)"). */
function signature(secret, timestamp, body) {
    var mac = new Mac(Mac.HMAC_SHA_256);
    var tag = mac.digest(timestamp + '.POST.' + EVENTS_PATH + '.' + body, secret);
    return 't=' + timestamp + ',v2=' + Encoding.toHex(tag);
}

function amount(money) {
    return money && money.available ? String(money.value) : undefined;
}

function items(lineContainer) {
    return lineContainer.getProductLineItems().toArray().map(function (line) {
        return {
            item_id: line.productID,
            item_name: line.productName,
            price: amount(line.basePrice),
            quantity: line.quantityValue
        };
    });
}

function customerId(lineContainer) {
    var customer = lineContainer.customer;
    return customer && customer.registered && customer.profile ? customer.profile.customerNo : undefined;
}

function contact(lineContainer) {
    var billing = lineContainer.billingAddress;
    var consent = lineContainer.custom ? lineContainer.custom.cartbackEmailConsent : undefined;
    var patch = {
        email: lineContainer.customerEmail || undefined,
        first_name: billing ? billing.firstName || undefined : undefined,
        phone: billing ? billing.phone || undefined : undefined
    };
    if (consent === true || consent === false) {
        patch.consents = { email: consent };
    }
    return patch;
}

/** One event for the basket as it is now. */
function basketEvent(type, basket, step) {
    var modified = basket.lastModified ? basket.lastModified.getTime() : Date.now();
    return {
        event_id: 'sfcc:' + basket.UUID + ':' + step + ':' + modified,
        type: type,
        occurred_at: new Date(modified).toISOString(),
        cart_id: basket.UUID,
        customer_id: customerId(basket),
        currency: basket.currencyCode,
        items: items(basket),
        customer: contact(basket)
    };
}

function post(events) {
    var body = JSON.stringify({ events: events });
    var secret = Site.getCurrent().getCustomPreferenceValue('cartbackIngestSecret');
    var service = LocalServiceRegistry.createService('cartback.http', {
        createRequest: function (svc, payload) {
            var base = svc.getConfiguration().getCredential().getURL().replace(/\/+$/, '');
            svc.setURL(base + EVENTS_PATH);
            svc.setRequestMethod('POST');
            svc.addHeader('Content-Type', 'application/json');
            svc.addHeader('X-Cartback-Signature', signature(secret, Math.floor(Date.now() / 1000), payload));
            return payload;
        },
        parseResponse: function (svc, client) {
            return client.text;
        }
    });
    var result = service.call(body);
    if (!result.ok) {
        // Status and event ids only: the body holds contact data.
        log.warn('Cartback did not take {0} event(s) ({1}): {2}', events.length, result.error,
            events.map(function (e) { return e.event_id; }).join(' '));
    }
}

function send(events) {
    try {
        post(events);
    } catch (e) {
        log.error('Cartback hook failed: {0}', e.message);
    }
    return new Status(Status.OK);
}

/* Add, update quantity, remove: the basket after the change. */
exports.afterPOST = function (basket) {
    if (basket && basket.orderNo) {
        return exports.orderPlaced(basket);
    }
    return send([basketEvent('cart_update', basket, 'items')]);
};
exports.afterPATCH = function (basket) {
    return send([basketEvent('cart_update', basket, 'items')]);
};
exports.afterDELETE = function (basket) {
    return send([basketEvent('cart_update', basket, 'items')]);
};
/* The shopper gave an email at checkout: the cart can now be recovered. */
exports.afterPUT = function (basket) {
    return send([basketEvent('begin_checkout', basket, 'checkout')]);
};
/* dw.ocapi.shop.order.beforePOST: the order keeps its basket's id (a
 * basket's custom attributes are copied to the order it becomes). */
exports.beforePOST = function (basket) {
    basket.custom.cartbackBasketId = basket.UUID;
    return new Status(Status.OK);
};
/* dw.ocapi.shop.order.afterPOST: the order was placed from the basket. */
exports.orderPlaced = function (order) {
    var cartId = order.custom && order.custom.cartbackBasketId ? order.custom.cartbackBasketId : undefined;
    return send([{
        event_id: 'sfcc:order:' + order.orderNo,
        type: 'purchase',
        occurred_at: (order.creationDate || new Date()).toISOString(),
        cart_id: cartId,
        customer_id: customerId(order),
        order_id: order.orderNo,
        currency: order.currencyCode,
        value: amount(order.totalGrossPrice)
    }]);
};

exports.signature = signature;
