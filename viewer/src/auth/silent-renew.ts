/**
 * The `silent_redirect_uri` page (silent-renew.html): the provider answers a hidden-iframe renewal
 * (`prompt=none`) here, and this hands the answer to the viewer in the parent window. Used only when
 * the provider issues no refresh token (session.ts); a separate page so the iframe does not load the
 * whole viewer. The settings are not consulted for this step: the parent holds the real ones.
 */
import { UserManager } from 'oidc-client-ts';

void new UserManager({ authority: location.origin, client_id: 'viewer', redirect_uri: location.href }).signinSilentCallback();
