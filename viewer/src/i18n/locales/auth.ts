/** Sign-in and sign-out (auth/, the page header). */
export const auth = {
  en: {
    signedInAs: 'Signed in as ',
    signOut: 'Sign out',
    signIn: 'Sign in',
    signedOut: 'You are signed out.',
    signingIn: 'Signing in…',
    signOutFailed: 'Sign-out failed: {{message}}',
    signInFailed: 'Sign-in failed: {{message}}',
    notConfigured: 'Sign-in is enabled on the server but PACS_AUTH_VIEWER_CLIENT_ID (or the issuer) is not set: the viewer cannot sign you in',
  },
  vi: {
    signedInAs: 'Đã đăng nhập: ',
    signOut: 'Đăng xuất',
    signIn: 'Đăng nhập',
    signedOut: 'Bạn đã đăng xuất.',
    signingIn: 'Đang đăng nhập…',
    signOutFailed: 'Đăng xuất không thành công: {{message}}',
    signInFailed: 'Đăng nhập không thành công: {{message}}',
    notConfigured: 'Máy chủ bật đăng nhập nhưng chưa đặt PACS_AUTH_VIEWER_CLIENT_ID (hoặc nhà cung cấp định danh): trình xem không thể đăng nhập cho bạn',
  },
} as const;
